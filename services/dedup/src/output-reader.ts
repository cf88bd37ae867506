import crypto from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { decodeHeaders, HEADER_IN_OFFSET, type Headers } from '@cdp/kafka';
import type { Logger } from '@cdp/log';

export interface OutputRecord {
  offset: number;
  key: string;
  value: Buffer | null;
  headers: Headers;
}

export interface TailReadResult {
  /** Highest `cdp-in-offset` header seen (the input offset already published), or -1. */
  lastInOffset: number;
  records: number;
}

/**
 * Reads committed records of one output partition from `fromOffset` up to its last stable
 * offset at call time (read_committed: records of aborted or open transactions are skipped).
 *
 * kafkajs has no manual partition assignment, so this uses a throwaway consumer group that
 * seeks the one partition it wants and pauses the others; the group is deleted afterwards.
 */
export async function readOutputTail(
  kafka: Kafka,
  topic: string,
  partition: number,
  fromOffset: number,
  onRecord: (record: OutputRecord) => Promise<void> | void,
  logger: Logger,
): Promise<TailReadResult> {
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `cdp-dedup-repair-${crypto.randomUUID()}`;
  try {
    // Default isolation is read_committed: `offset` is the last stable offset (LSO).
    const offsets = await admin.fetchTopicOffsets(topic);
    const end = Number(offsets.find((o) => o.partition === partition)?.offset ?? 0);
    const low = Number(offsets.find((o) => o.partition === partition)?.low ?? 0);
    const start = Math.max(fromOffset, low);
    const result: TailReadResult = { lastInOffset: -1, records: 0 };
    if (start >= end) return result;

    const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
    let position = start - 1;
    let failure: unknown;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const advance = (lastOffset: number) => {
      if (lastOffset > position) position = lastOffset;
      if (position >= end - 1) finish();
    };
    // Batches made only of control records or aborted data never reach eachBatch.
    consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
      if (e.payload.partition === partition) advance(Number(e.payload.lastOffset));
    });
    consumer.on(consumer.events.CRASH, (e) => {
      failure = e.payload.error;
      finish();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, pause }) => {
        if (batch.partition !== partition) {
          pause();
          return;
        }
        for (const m of batch.messages) {
          const offset = Number(m.offset);
          if (offset < start || offset >= end) continue;
          const headers = decodeHeaders(m.headers);
          const inOffset = Number(headers[HEADER_IN_OFFSET] ?? -1);
          if (inOffset > result.lastInOffset) result.lastInOffset = inOffset;
          result.records++;
          await onRecord({ offset, key: m.key?.toString('utf8') ?? '', value: m.value, headers });
        }
        advance(Number(batch.lastOffset()));
      },
    });
    consumer.seek({ topic, partition, offset: String(start) });
    await done;
    await consumer.disconnect();
    if (failure) throw failure;
    logger.debug({ topic, partition, start, end, records: result.records }, 'output tail read');
    return result;
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}
