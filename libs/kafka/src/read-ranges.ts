import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, KafkaMessage } from 'kafkajs';

/** Offsets `[from, to)` of one partition. */
export interface PartitionRange {
  partition: number;
  from: bigint;
  to: bigint;
}

export interface PartitionBounds {
  partition: number;
  /** The earliest offset still in the log. */
  low: bigint;
  /** The high watermark: the offset the next record will get. */
  high: bigint;
}

export async function partitionBounds(admin: Admin, topic: string): Promise<PartitionBounds[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets
    .map((o) => ({ partition: o.partition, low: BigInt(o.low), high: BigInt(o.high) }))
    .sort((a, b) => a.partition - b.partition);
}

export interface ReadRangesOptions {
  kafka: Kafka;
  topic: string;
  /** One per partition of the topic; an empty range (from ≥ to) keeps its partition paused. */
  ranges: PartitionRange[];
  /** The committed records of one fetch that fall in their partition's range, in offset order. */
  onMessages: (partition: number, messages: KafkaMessage[]) => void | Promise<void>;
  /** How many offsets were passed since the last call (records, control records, aborted ones). */
  onProgress?: (offsets: number) => void;
  /** Fails the read when no partition moves for this long (an open transaction holds it). */
  idleTimeoutMs?: number;
}

/**
 * Reads fixed offset ranges of a topic once, committed records only, and returns when every
 * range is read. A consumer group of its own (random id, nothing committed) gives kafkajs's
 * fetching without moving any real group. A range ends where the partition's position passes
 * `to`, measured on the fetched batches rather than on records, because transaction markers
 * take offsets that carry no record.
 */
export async function readRanges(options: ReadRangesOptions): Promise<void> {
  const { kafka, topic } = options;
  const pending = new Map(options.ranges.filter((r) => r.from < r.to).map((r) => [r.partition, { ...r, position: r.from }]));
  if (pending.size === 0) return;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const consumer = kafka.consumer({ groupId: `cdp-read-${randomUUID()}`, allowAutoTopicCreation: false, maxWaitTimeInMs: 250 });
  let settle!: (error?: unknown) => void;
  const finished = new Promise<void>((resolve, reject) => {
    settle = (error) => (error === undefined ? resolve() : reject(error));
  });
  let lastMove = Date.now();

  const advance = (partition: number, next: bigint) => {
    const range = pending.get(partition);
    if (!range || next <= range.position) return;
    const end = next < range.to ? next : range.to;
    options.onProgress?.(Number(end - range.position));
    range.position = end;
    lastMove = Date.now();
    if (end >= range.to) {
      pending.delete(partition);
      consumer.pause([{ topic, partitions: [partition] }]);
      if (pending.size === 0) settle();
    }
  };
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.topic === topic && payload.lastOffset !== null) advance(payload.partition, BigInt(payload.lastOffset) + 1n);
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => settle(payload.error));
  const watchdog = setInterval(() => {
    if (Date.now() - lastMove < idleTimeoutMs) return;
    const stuck = [...pending.values()].map((r) => `${r.partition}@${r.position} (end ${r.to})`).join(', ');
    settle(new Error(`no progress for ${Math.round(idleTimeoutMs / 1000)} s reading ${topic}, partitions ${stuck} (an open transaction?)`));
  }, 500);

  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const range = pending.get(batch.partition);
        if (!range) return;
        const inRange = batch.messages.filter((m) => {
          const offset = BigInt(m.offset);
          return offset >= range.position && offset < range.to;
        });
        if (inRange.length > 0) await options.onMessages(batch.partition, inRange);
      },
    });
    const idle = options.ranges.filter((r) => !pending.has(r.partition)).map((r) => r.partition);
    if (idle.length > 0) consumer.pause([{ topic, partitions: idle }]);
    for (const range of pending.values()) consumer.seek({ topic, partition: range.partition, offset: range.from.toString() });
    await finished;
  } finally {
    clearInterval(watchdog);
    await consumer.disconnect().catch(() => undefined);
  }
}
