import { randomBytes } from 'node:crypto';

/**
 * multipart/form-data encoding (RFC 7578), done by hand because undici 8's `Dispatcher.request`
 * only accepts a FormData built by its own package instance: the global FormData (Node's bundled
 * undici) is refused with `InvalidArgumentError`, and a plugin must not import undici itself.
 * The body is one Buffer, so its length is known (content-length, no chunked upload).
 */

export type MultipartValue = string | number | boolean | readonly string[] | MultipartFile | undefined;

export interface MultipartFile {
  readonly data: Uint8Array;
  readonly filename: string;
  readonly contentType: string;
}

export interface EncodedMultipart {
  readonly body: Buffer;
  /** `multipart/form-data; boundary=…` */
  readonly contentType: string;
}

function isFile(value: MultipartValue): value is MultipartFile {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'data' in value;
}

// The WHATWG HTML form encoding: escape what would break the quoted header parameter.
function escapeName(value: string): string {
  return value.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22');
}

function normalizeNewlines(value: string): string {
  return value.replace(/\r\n|\r|\n/g, '\r\n');
}

/**
 * Encodes fields in order. Arrays become repeated `name[]` fields (what the official OpenAI SDKs
 * send for array parameters such as `include[]`); `undefined` fields are left out.
 */
export function encodeMultipart(fields: ReadonlyArray<readonly [string, MultipartValue]>): EncodedMultipart {
  const boundary = `----KotoFormBoundary${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  const part = (name: string, value: string | MultipartFile) => {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(name)}"`;
    if (typeof value === 'string') {
      chunks.push(Buffer.from(`${head}\r\n\r\n`, 'utf8'), Buffer.from(normalizeNewlines(value), 'utf8'), Buffer.from('\r\n'));
      return;
    }
    head += `; filename="${escapeName(value.filename)}"\r\nContent-Type: ${value.contentType.replace(/[\r\n]/g, '') || 'application/octet-stream'}`;
    chunks.push(
      Buffer.from(`${head}\r\n\r\n`, 'utf8'),
      Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength),
      Buffer.from('\r\n'),
    );
  };
  for (const [name, value] of fields) {
    if (value === undefined) continue;
    if (isFile(value)) part(name, value);
    else if (Array.isArray(value)) for (const item of value as readonly string[]) part(`${name}[]`, item);
    else part(name, String(value));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}
