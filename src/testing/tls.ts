/**
 * Run-time TLS material for loopback test servers.
 *
 * {@link createTestCertificate} makes a throw-away certificate authority and a
 * server certificate signed by it, valid for `localhost`, `127.0.0.1` and `::1`
 * (plus any extra names you pass). Keys are ECDSA P-256 made with WebCrypto,
 * so generating a pair takes a few milliseconds. Nothing is written to disk.
 *
 * A client trusts the server by passing {@link TestCertificate.ca} as its
 * `ca` option (undici: `new Agent({ connect: { ca } })`, Node: `tls.connect({ ca })`).
 *
 * {@link getTestCertificate} returns one certificate per process, created on
 * first use, so that many servers in one test file share it.
 *
 * Implementation note: `@peculiar/x509` needs the Reflect metadata API, so
 * `reflect-metadata` is loaded (lazily, the first time a certificate is made).
 * It adds `Reflect.getMetadata` and friends to the global `Reflect` object.
 *
 * @module
 */

import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

/** PEM-encoded TLS material for a test server and its clients. */
export interface TestCertificate {
  /** PEM certificate of the throw-away CA: what clients must trust. */
  readonly ca: string;
  /** PEM server certificate (leaf), signed by {@link TestCertificate.ca}. */
  readonly cert: string;
  /** PEM PKCS#8 private key of the server certificate. */
  readonly key: string;
  /** Names and addresses in the server certificate's subjectAltName. */
  readonly hosts: readonly string[];
  /** Expiry of the server certificate. */
  readonly notAfter: Date;
}

/** Options for {@link createTestCertificate}. */
export interface TestCertificateOptions {
  /**
   * Extra DNS names or IP addresses for the server certificate, in addition to
   * `localhost`, `127.0.0.1` and `::1`.
   */
  hosts?: readonly string[];
  /** Validity of both certificates, in days from now (default 7). */
  validityDays?: number;
  /** Common name of the CA (default `koto-voice test CA`). */
  caName?: string;
}

/** The names every test certificate covers. */
export const DEFAULT_TEST_HOSTS: readonly string[] = Object.freeze(['localhost', '127.0.0.1', '::1']);

const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

type X509Module = typeof import('@peculiar/x509');
let x509Module: Promise<X509Module> | undefined;

function loadX509(): Promise<X509Module> {
  x509Module ??= (async () => {
    // @peculiar/x509 (through tsyringe) throws at load time without a Reflect
    // metadata polyfill, so it must be imported after this side-effect import.
    await import('reflect-metadata');
    return await import('@peculiar/x509');
  })();
  return x509Module;
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  if (bytes[0] === 0) bytes[0] = 1;
  return Buffer.from(bytes).toString('hex');
}

function escapeDnValue(value: string): string {
  return value.replace(/([,+"\\<>;=#])/g, '\\$1');
}

/**
 * Create a fresh CA and a server certificate signed by it.
 *
 * The CA has `basicConstraints cA=true, pathLen=0` and `keyUsage keyCertSign`;
 * the server certificate has `cA=false`, `digitalSignature`, `extKeyUsage
 * serverAuth` and the subjectAltNames. Both are back-dated one hour to
 * tolerate clock skew.
 */
export async function createTestCertificate(options: TestCertificateOptions = {}): Promise<TestCertificate> {
  const x509 = await loadX509();
  const crypto = webcrypto;
  const subtle = crypto.subtle;
  const validityDays = options.validityDays ?? 7;
  if (!(validityDays > 0)) throw new RangeError('validityDays must be a positive number');
  const hosts = [...new Set([...DEFAULT_TEST_HOSTS, ...(options.hosts ?? [])])];
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + validityDays * 24 * 60 * 60 * 1000);

  const caKeys = await subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify']);
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: `CN=${escapeDnValue(options.caName ?? 'koto-voice test CA')}`,
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: EC_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const leafKeys = await subtle.generateKey(EC_ALGORITHM, true, ['sign', 'verify']);
  const leafCert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: 'CN=localhost',
      issuer: caCert.subject,
      notBefore,
      notAfter,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: EC_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(
          hosts.map((value) => ({ type: isIP(value) === 0 ? ('dns' as const) : ('ip' as const), value })),
          false,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, crypto),
        await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );

  const pkcs8 = await subtle.exportKey('pkcs8', leafKeys.privateKey);
  return Object.freeze({
    ca: caCert.toString('pem') + '\n',
    cert: leafCert.toString('pem') + '\n',
    key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n',
    hosts: Object.freeze(hosts),
    notAfter,
  });
}

let shared: Promise<TestCertificate> | undefined;

/**
 * The process-wide test certificate (created on first call, then reused).
 * Covers `localhost`, `127.0.0.1` and `::1`.
 */
export function getTestCertificate(): Promise<TestCertificate> {
  if (!shared) {
    const pending = createTestCertificate();
    shared = pending;
    // Do not cache a failure: the next caller gets a fresh attempt.
    pending.catch(() => {
      if (shared === pending) shared = undefined;
    });
  }
  return shared;
}
