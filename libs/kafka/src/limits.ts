import type { Admin, Transaction } from 'kafkajs';
import { ConfigResourceTypes } from 'kafkajs';
import type { OutboundMessage } from './producer';

/**
 * Size limits of what Kafka accepts. The broker refuses a record batch (one partition's share
 * of a produce request) larger than the topic's `max.message.bytes` with MESSAGE_TOO_LARGE,
 * and no retry can succeed: senders must split by bytes before sending.
 */

/** Header of a v2 record batch (offsets, lengths, CRC, producer id/epoch/sequence, count). */
const RECORD_BATCH_HEADER_BYTES = 61;

/** A batch's fixed bytes beside its records: the v2 header plus a margin. */
export const RECORD_BATCH_OVERHEAD_BYTES = RECORD_BATCH_HEADER_BYTES + 67;

/** Most bytes a varint takes (zigzag varlong: 10, varint: 5); used where the value is unknown. */
const MAX_VARINT_BYTES = 5;
const MAX_VARLONG_BYTES = 10;

type Bytes = string | Buffer | null | undefined;
type HeaderValue = Bytes | Array<string | Buffer>;

/** The parts of a message that are encoded in a record (kafkajs Message and OutboundMessage). */
export interface SizedMessage {
  key?: Bytes;
  value: Bytes;
  headers?: Record<string, HeaderValue>;
}

function byteLength(b: Bytes): number {
  if (b === null || b === undefined) return 0;
  return typeof b === 'string' ? Buffer.byteLength(b) : b.length;
}

/** Bytes of a zigzag varint holding `n` (n >= 0; lengths, -1 for null is 1 byte). */
function varintBytes(n: number): number {
  let zigzag = n * 2; // non-negative: zigzag(n) = 2n
  let bytes = 1;
  while (zigzag >= 0x80) {
    zigzag = Math.floor(zigzag / 0x80);
    bytes++;
  }
  return bytes;
}

/** A length-prefixed field: the varint length then the bytes (null: the 1-byte -1). */
function fieldBytes(b: Bytes): number {
  if (b === null || b === undefined) return 1;
  const n = byteLength(b);
  return varintBytes(n) + n;
}

/**
 * Upper bound of one record's encoded size inside a v2 batch: its length prefix, attributes,
 * timestamp and offset deltas (their largest varint size), key, value and headers with their
 * varint lengths. Uncompressed: compression only makes it smaller.
 */
export function recordBytes(message: SizedMessage): number {
  let body = 1 /* attributes */ + MAX_VARLONG_BYTES /* timestampDelta */ + MAX_VARINT_BYTES; /* offsetDelta */
  body += fieldBytes(message.key);
  body += fieldBytes(message.value);
  const entries: Array<[string, Bytes]> = [];
  for (const [name, v] of Object.entries(message.headers ?? {})) {
    if (Array.isArray(v)) for (const one of v) entries.push([name, one]);
    else if (v !== undefined) entries.push([name, v]);
  }
  body += varintBytes(entries.length);
  for (const [name, v] of entries) body += fieldBytes(name) + fieldBytes(v);
  return MAX_VARINT_BYTES /* record length */ + body;
}

/**
 * Splits `records` (order kept) into consecutive groups whose encoded size plus one batch's
 * overhead stays within `limitBytes`. A record too large on its own forms its own group: the
 * caller decides what to do with it (dead-letter, refuse).
 */
export function splitByBytes<T>(
  records: readonly T[],
  limitBytes: number,
  sizeOf: (record: T) => number = recordBytes as (r: T) => number,
): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let bytes = RECORD_BATCH_OVERHEAD_BYTES;
  for (const record of records) {
    const size = sizeOf(record);
    if (current.length > 0 && bytes + size > limitBytes) {
      groups.push(current);
      current = [];
      bytes = RECORD_BATCH_OVERHEAD_BYTES;
    }
    current.push(record);
    bytes += size;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** True when one record alone exceeds `limitBytes` in a batch of its own. */
export function exceedsLimit(message: SizedMessage, limitBytes: number): boolean {
  return RECORD_BATCH_OVERHEAD_BYTES + recordBytes(message) > limitBytes;
}

const limitCache = new WeakMap<Admin, Map<string, Promise<number>>>();

/**
 * The largest record batch `topic` accepts: the smaller of the topic's `max.message.bytes`
 * and every broker's `message.max.bytes`. Read once per topic and admin client (a failed read
 * is not cached).
 */
export function topicMaxMessageBytes(admin: Admin, topic: string): Promise<number> {
  let perTopic = limitCache.get(admin);
  if (!perTopic) {
    perTopic = new Map();
    limitCache.set(admin, perTopic);
  }
  const cached = perTopic.get(topic);
  if (cached) return cached;
  const read = readMaxMessageBytes(admin, topic);
  perTopic.set(topic, read);
  read.catch(() => perTopic.delete(topic));
  return read;
}

async function readMaxMessageBytes(admin: Admin, topic: string): Promise<number> {
  const { brokers } = await admin.describeCluster();
  const result = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [
      { type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] },
      ...brokers.map((b) => ({ type: ConfigResourceTypes.BROKER, name: String(b.nodeId), configNames: ['message.max.bytes'] })),
    ],
  });
  const values: number[] = [];
  for (const r of result.resources) {
    if (r.errorCode !== 0) throw new Error(`describeConfigs ${r.resourceName}: error ${r.errorCode} ${r.errorMessage ?? ''}`.trim());
    for (const e of r.configEntries) {
      if (e.configName === 'max.message.bytes' || e.configName === 'message.max.bytes') values.push(Number(e.configValue));
    }
  }
  const valid = values.filter((v) => Number.isFinite(v) && v > 0);
  if (valid.length === 0) throw new Error(`no max.message.bytes found for topic ${topic}`);
  return Math.min(...valid);
}

/**
 * Kafka errors that refuse a record itself, so that sending it again (alone, to the same topic)
 * fails the same way: too large for the topic, or failing the broker's validation. CORRUPT_MESSAGE
 * is retriable for kafkajs (it may be a network corruption) but, seen again after its retries,
 * is the record's.
 */
const RECORD_REFUSALS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE']);

/**
 * The Kafka error type (e.g. `MESSAGE_TOO_LARGE`) when `error` is a refusal of the records sent
 * rather than a failure of the cluster, else undefined. Looks through kafkajs's wrappers
 * (retries exceeded, non-retriable, aggregate errors).
 */
export function recordRefusal(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  const queue = [error];
  while (queue.length > 0) {
    const e = queue.shift() as { type?: unknown; cause?: unknown; errors?: unknown } | null | undefined;
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    if (typeof e.type === 'string' && RECORD_REFUSALS.has(e.type)) return e.type;
    queue.push(e.cause);
    if (Array.isArray(e.errors)) queue.push(...(e.errors as unknown[]));
  }
  return undefined;
}

/**
 * Kept below a topic's real batch limit for each produce request: room for what the record
 * estimate does not see (it is an upper bound already; this covers broker-side framing).
 */
export const PUBLISH_MARGIN_BYTES = 16 * 1024;

/**
 * Sends `records` in the transaction as consecutive produce requests, each under `limitBytes`
 * (one request carries one record batch per partition, which the broker checks against the
 * topic's max.message.bytes). Returns the last offset written to `partition`, or -1.
 */
export async function sendSplit(
  txn: Transaction,
  topic: string,
  records: OutboundMessage[],
  limitBytes: number,
  partition?: number,
): Promise<number> {
  let last = -1;
  for (const group of splitByBytes(records, limitBytes)) {
    const meta = await txn.send({ topic, acks: -1, messages: group });
    const base = Number(meta.find((r) => r.partition === partition)?.baseOffset ?? -1);
    if (base >= 0) last = base + group.filter((r) => r.partition === partition).length - 1;
  }
  return last;
}
