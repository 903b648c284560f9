import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, kotoError } from '../errors.ts';

/**
 * `transport.ca`: extra CA certificates, given inline (PEM text) or as a path to a PEM file
 * (relative to the config file). Checked when the config loads, so a wrong path or a file that
 * is not a certificate is a config error naming the key, not a TLS failure on every request.
 */

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Whether the value is PEM text rather than a path. */
export function isInlinePem(value: string): boolean {
  return /-----BEGIN [A-Z0-9 ]+-----/.test(value);
}

/** Why `text` is not a usable bundle of PEM certificates, or undefined. */
export function pemProblem(text: string): string | undefined {
  const blocks = text.match(PEM_BLOCK);
  if (!blocks) {
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return 'it holds a private key, not a certificate';
    // A DER certificate starts with an ASN.1 SEQUENCE (0x30 0x82).
    if (text.charCodeAt(0) === 0x30)
      return 'it holds no PEM certificate (a binary DER file? convert it: openssl x509 -inform der -in FILE -out FILE.pem)';
    return 'it holds no PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)';
  }
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `certificate ${index + 1} of ${blocks.length} in it is damaged (${describe(err)})`;
    }
  }
  return undefined;
}

export interface ResolvedCa {
  /** The PEM text to trust (undefined: none configured). */
  readonly pem: string | undefined;
  /** The file it came from, watched for changes like the dictionary. */
  readonly file: string | undefined;
}

const FIX = 'point transport.ca at a PEM file of CA certificates (absolute, or relative to the config file), or paste the PEM text itself';

/** Reads and checks `transport.ca` (`configFile` and `dir` locate a relative path and name the config in errors). */
export async function resolveCa(value: string | undefined, dir: string, configFile: string | undefined): Promise<ResolvedCa> {
  const file = configFile ?? '<config>';
  if (value === undefined || value.trim() === '') return { pem: undefined, file: undefined };
  if (isInlinePem(value)) {
    const problem = pemProblem(value);
    if (problem) {
      throw kotoError(
        'KOTO_ERR_CONFIG_INVALID',
        { file, detail: `transport.ca: the inline PEM text is not usable: ${problem}` },
        { fix: FIX },
      );
    }
    return { pem: value, file: undefined };
  }
  const given = value.trim();
  const target = /^~[\\/]/.test(given) ? path.join(os.homedir(), given.slice(2)) : path.resolve(dir, given);
  let text: string;
  try {
    text = await readFile(target, 'latin1');
  } catch (err) {
    const reason = describe(err)
      .replace(/^[A-Z]+: /, '')
      .replace(/, open .*$/, '');
    throw kotoError('KOTO_ERR_CONFIG_FILE_UNREADABLE', { file, path: 'transport.ca', target, reason }, { fix: FIX });
  }
  const problem = pemProblem(text);
  if (problem) throw kotoError('KOTO_ERR_CONFIG_FILE_UNREADABLE', { file, path: 'transport.ca', target, reason: problem }, { fix: FIX });
  return { pem: text, file: target };
}
