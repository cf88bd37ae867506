// Kafka header names of DESIGN.md ("Keys and headers").
export const HEADER_STAGE = 'cdp-stage';
export const HEADER_ERROR = 'cdp-error';
export const HEADER_IN_PARTITION = 'cdp-in-partition';
export const HEADER_IN_OFFSET = 'cdp-in-offset';
/** Where a dead-lettered message came from, so it can be inspected and replayed. */
export const HEADER_SOURCE_TOPIC = 'cdp-source-topic';
export const HEADER_SOURCE_PARTITION = 'cdp-source-partition';
export const HEADER_SOURCE_OFFSET = 'cdp-source-offset';

export type Headers = Record<string, string>;

/** kafkajs gives header values as Buffer | string | arrays of them; we use strings. */
export function decodeHeaders(raw: Record<string, unknown> | undefined): Headers {
  const out: Headers = {};
  for (const [k, v] of Object.entries(raw ?? {})) {
    const first = Array.isArray(v) ? v[0] : v;
    if (first !== undefined && first !== null) out[k] = Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
  }
  return out;
}
