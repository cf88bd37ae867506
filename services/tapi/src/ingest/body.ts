import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import zlib from 'node:zlib';
import { HttpError } from '@cdp/http';

/** 400 reasons; the code is also the metric label, so the set is bounded. */
export type BadRequestCode =
  'invalid_json' | 'invalid_body' | 'bad_encoding' | 'payload_too_large' | 'event_too_large' | 'expanded_too_large';

export class BadRequest extends HttpError {
  constructor(
    readonly reason: BadRequestCode,
    message: string,
  ) {
    super(400, reason, message);
  }
}

/**
 * Reads the raw body, refusing more than `maxBytes` on the wire without buffering the rest.
 * The Content-Length is trusted only to refuse early, never to size a buffer.
 */
export function readRawBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    return Promise.reject(new BadRequest('payload_too_large', `request body exceeds ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        chunks.length = 0;
        // Keep reading (and discarding) so the 400 can be written on this connection.
        reject(new BadRequest('payload_too_large', `request body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    });
    req.on('error', (error) => {
      if (!failed) {
        failed = true;
        reject(new BadRequest('invalid_body', `request body could not be read: ${error.message}`));
      }
    });
  });
}

function inflate(fn: typeof zlib.gunzip, raw: Buffer, maxOutput: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxOutputLength makes zlib stop as soon as the output passes the limit: a bomb costs at
    // most maxOutput bytes of memory and the CPU to produce them.
    fn(raw, { maxOutputLength: maxOutput + 1 }, (error, out) => {
      if (error) {
        const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError;
        reject(
          tooLarge
            ? new BadRequest('payload_too_large', `decoded request body exceeds ${maxOutput} bytes`)
            : new BadRequest('bad_encoding', `request body is not valid for its Content-Encoding: ${error.message}`),
        );
      } else if (out.length > maxOutput) {
        reject(new BadRequest('payload_too_large', `decoded request body exceeds ${maxOutput} bytes`));
      } else resolve(out);
    });
  });
}

/** Undoes Content-Encoding (gzip, deflate, br, identity) with the output capped at `maxBytes`. */
export async function decodeBody(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Promise<Buffer> {
  const encodings = (contentEncoding ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '' && e !== 'identity');
  if (encodings.length > 1) throw new BadRequest('bad_encoding', 'stacked Content-Encodings are not supported');
  let out = raw;
  switch (encodings[0]) {
    case undefined:
      break;
    case 'gzip':
    case 'x-gzip':
      out = await inflate(zlib.gunzip, raw, maxBytes);
      break;
    case 'deflate':
      // Some clients send raw deflate without the zlib header; unzip() accepts both zlib and gzip.
      out = await inflate(zlib.unzip, raw, maxBytes).catch((error) =>
        error instanceof BadRequest && error.reason === 'bad_encoding' ? inflate(zlib.inflateRaw, raw, maxBytes) : Promise.reject(error),
      );
      break;
    case 'br':
      out = await inflate(zlib.brotliDecompress as unknown as typeof zlib.gunzip, raw, maxBytes);
      break;
    default:
      throw new BadRequest('bad_encoding', `unsupported Content-Encoding "${encodings[0].slice(0, 40)}"`);
  }
  if (out.length > maxBytes) throw new BadRequest('payload_too_large', `request body exceeds ${maxBytes} bytes`);
  return out;
}

/**
 * Parses the body as JSON whatever the Content-Type (browsers send text/plain, Rudder sends
 * form-urlencoded JSON). A top level that is not an object is not a Segment request. Bytes
 * that are not UTF-8 are refused rather than silently replaced.
 */
export function parseJsonBody(body: Buffer): Record<string, unknown> {
  if (!isUtf8(body)) throw new BadRequest('bad_encoding', 'request body is not valid UTF-8');
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequest('invalid_json', 'request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new BadRequest('invalid_body', 'request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/**
 * False when the body cannot hold a lone surrogate: valid UTF-8 cannot, so only a `\uD800`-
 * `\uDFFF` JSON escape can put one in a parsed string. A cheap native scan that lets almost
 * every request skip the per-string check (a false positive only costs that check).
 */
export function mayHoldLoneSurrogates(body: Buffer): boolean {
  return body.includes(SURROGATE_ESCAPE_LOWER) || body.includes(SURROGATE_ESCAPE_UPPER);
}

const SURROGATE_ESCAPE_LOWER = Buffer.from('\\ud');
const SURROGATE_ESCAPE_UPPER = Buffer.from('\\uD');
