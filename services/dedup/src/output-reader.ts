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

/** Bounds what one repair holds from a fetch (kafkajs defaults: 10 MiB, 1 MiB per partition). */
const FETCH_MAX_BYTES = 4 * 1024 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 1024 * 1024;

/**
 * Reads committed records of one output partition from `fromOffset` up to its last stable
 * offset at call time (read_committed: records of aborted or open transactions are skipped),
 * handing them to `onBatch` one fetched batch at a time, in offset order. An error thrown by
 * `onBatch` stops the read and is rethrown (what it already handled stays handled).
 *
 * kafkajs has no manual partition assignment, so this uses a throwaway consumer group that
 * seeks the one partition it wants and pauses the others; the group is deleted afterwards.
 * Each batch's offsets are resolved explicitly, so the next fetch starts after it (without
 * that, kafkajs fetches the same first batch again and again).
 */
export async function readOutputTail(
  kafka: Kafka,
  topic: string,
  partition: number,
  fromOffset: number,
  onBatch: (records: OutputRecord[]) => Promise<void>,
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

    const consumer = kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      // Long enough for a busy event loop (several repairs at once): a member dropped from the
      // throwaway group rejoins at its committed offset (below), not at `start`.
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxBytes: FETCH_MAX_BYTES,
      maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
    });
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
      failure ??= e.payload.error;
      finish();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      // Commits the throwaway group's resolved offsets, so that a rejoin resumes there.
      autoCommit: true,
      autoCommitInterval: 5_000,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, pause, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (batch.partition !== partition) {
          pause();
          return;
        }
        if (failure !== undefined || !isRunning() || isStale()) return;
        const records: OutputRecord[] = [];
        for (const m of batch.messages) {
          const offset = Number(m.offset);
          // At or below `position`: already handled (fetched again after a rejoin).
          if (offset < start || offset <= position || offset >= end) continue;
          const headers = decodeHeaders(m.headers);
          const inOffset = Number(headers[HEADER_IN_OFFSET] ?? -1);
          if (inOffset > result.lastInOffset) result.lastInOffset = inOffset;
          records.push({ offset, key: m.key?.toString('utf8') ?? '', value: m.value, headers });
        }
        try {
          if (records.length > 0) await onBatch(records);
        } catch (error) {
          failure = error;
          finish();
          return;
        }
        result.records += records.length;
        const last = batch.messages[batch.messages.length - 1];
        // Also resolves a trailing control record (kafkajs maps the last message to the batch end).
        if (last) resolveOffset(last.offset);
        advance(Number(batch.lastOffset()));
        await heartbeat().catch(() => undefined);
      },
    });
    consumer.seek({ topic, partition, offset: String(start) });
    await done;
    await consumer.disconnect();
    if (failure !== undefined) throw failure;
    logger.debug({ topic, partition, start, end, records: result.records }, 'output tail read');
    return result;
  } finally {
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.disconnect();
  }
}
