import { KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { recordBytes, recordRefusal, RECORD_BATCH_OVERHEAD_BYTES, splitByBytes, exceedsLimit, type SizedMessage } from './limits';

// kafkajs's own v2 record-batch encoder: the bytes the broker checks against max.message.bytes.
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0') as { RecordBatch: (args: object) => Promise<{ buffer: Buffer }> };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0') as (args: object) => unknown;

const toBuffer = (b: string | Buffer | null | undefined) => (b === null || b === undefined ? null : Buffer.from(b));

/** Encoded size of a batch holding `messages`, as kafkajs writes it (worst-case deltas). */
async function encodedBatchBytes(messages: SizedMessage[]): Promise<number> {
  const records = messages.map((m, i) =>
    Record({
      key: toBuffer(m.key),
      value: toBuffer(m.value),
      headers: m.headers,
      offsetDelta: i,
      // A late record in a long-lived batch: a large timestamp delta.
      timestampDelta: 2 ** 40,
    }),
  );
  const batch = await RecordBatch({ records, transactional: true, lastOffsetDelta: messages.length - 1 });
  return batch.buffer.length;
}

const message = (valueBytes: number, headers: Record<string, string> = {}, key: string | null = 'web:m1'): SizedMessage => ({
  key,
  value: 'x'.repeat(valueBytes),
  headers,
});

describe('recordBytes', () => {
  it.each([
    ['empty value, no key', message(0, {}, null)],
    ['small', message(10)],
    ['~600 bytes with headers', message(600, { 'cdp-in-partition': '3', 'cdp-in-offset': '123456789' })],
    ['near 32 KB', message(32 * 1024 - 1, { 'cdp-stage': 'tapi' })],
    ['multi-byte characters', { key: 'wéb:ñ', value: '€'.repeat(5_000), headers: { h: 'ü' } }],
    ['array header values', { key: 'k', value: 'v', headers: { h: ['a', Buffer.from('bb')] } }],
  ])('bounds the encoded size of one record (%s) from above, within a few bytes', async (_, m) => {
    const actual = (await encodedBatchBytes([m])) - 61;
    expect(recordBytes(m)).toBeGreaterThanOrEqual(actual);
    expect(recordBytes(m) - actual).toBeLessThanOrEqual(16);
  });

  it('bounds a whole batch with the batch overhead', async () => {
    const messages = Array.from({ length: 500 }, (_, i) => message(600 + (i % 7), { 'cdp-in-offset': String(i) }));
    const bound = RECORD_BATCH_OVERHEAD_BYTES + messages.reduce((s, m) => s + recordBytes(m), 0);
    const actual = await encodedBatchBytes(messages);
    expect(bound).toBeGreaterThanOrEqual(actual);
    expect(bound / actual).toBeLessThan(1.03);
  });
});

describe('splitByBytes', () => {
  const sizeOf = (n: number) => n;

  it('keeps order and every record, each group within the limit', () => {
    const sizes = Array.from({ length: 1_000 }, (_, i) => 100 + ((i * 37) % 900));
    const limit = 10_000;
    const groups = splitByBytes(sizes, limit, sizeOf);
    expect(groups.flat()).toEqual(sizes);
    for (const g of groups) expect(RECORD_BATCH_OVERHEAD_BYTES + g.reduce((s, n) => s + n, 0)).toBeLessThanOrEqual(limit);
    // Greedy: a group is closed only when the next record would not fit.
    for (let i = 0; i + 1 < groups.length; i++) {
      expect(RECORD_BATCH_OVERHEAD_BYTES + groups[i].reduce((s, n) => s + n, 0) + groups[i + 1][0]).toBeGreaterThan(limit);
    }
  });

  it('puts a record above the limit in a group of its own', () => {
    expect(splitByBytes([10, 5_000, 10, 10], 1_000, sizeOf)).toEqual([[10], [5_000], [10, 10]]);
  });

  it('returns no group for no records, one group when all fit', () => {
    expect(splitByBytes([], 1_000, sizeOf)).toEqual([]);
    expect(splitByBytes([1, 2, 3], 1_000, sizeOf)).toEqual([[1, 2, 3]]);
  });

  it('sizes messages with recordBytes by default', async () => {
    const messages = Array.from({ length: 3_000 }, (_, i) => message(550 + (i % 100), { 'cdp-in-offset': String(i) }));
    const limit = 256 * 1024;
    const groups = splitByBytes(messages, limit);
    expect(groups.length).toBeGreaterThan(1);
    for (const g of groups) expect(await encodedBatchBytes(g)).toBeLessThanOrEqual(limit);
    expect(exceedsLimit(message(limit), limit)).toBe(true);
    expect(exceedsLimit(message(limit - 200), limit)).toBe(false);
  });
});

describe('recordRefusal', () => {
  // kafkajs's own errors, as its producer throws them.
  const { createErrorFromCode } = require('kafkajs/src/protocol/error') as {
    createErrorFromCode: (code: number) => Error & { type: string };
  };
  const protocol = (code: number) => new KafkaJSProtocolError(createErrorFromCode(code));

  it('names refusals of the records, also inside kafkajs wrappers', () => {
    expect(recordRefusal(protocol(10))).toBe('MESSAGE_TOO_LARGE');
    expect(recordRefusal(protocol(18))).toBe('RECORD_LIST_TOO_LARGE');
    expect(recordRefusal(protocol(87))).toBe('INVALID_RECORD');
    const corrupt = protocol(2);
    expect(recordRefusal(new KafkaJSNumberOfRetriesExceeded(corrupt, { retryCount: 5, retryTime: 100 }))).toBe('CORRUPT_MESSAGE');
    // kafkajs's aggregate error (several brokers' failures) lists them in `errors`.
    expect(recordRefusal(Object.assign(new Error('aggregate'), { errors: [new Error('other'), protocol(10)] }))).toBe('MESSAGE_TOO_LARGE');
  });

  it('is undefined for failures of the cluster', () => {
    expect(recordRefusal(protocol(6))).toBeUndefined(); // NOT_LEADER_FOR_PARTITION
    expect(recordRefusal(protocol(19))).toBeUndefined(); // NOT_ENOUGH_REPLICAS
    expect(recordRefusal(new Error('connect ECONNREFUSED'))).toBeUndefined();
    expect(recordRefusal(undefined)).toBeUndefined();
  });
});
