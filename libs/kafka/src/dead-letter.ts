import type { Kafka, Producer } from 'kafkajs';
import { errorFields, type Logger } from '@cdp/log';
import { HEADER_ERROR, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC, HEADER_STAGE, type Headers } from './headers';
import { exceedsLimit, PUBLISH_MARGIN_BYTES, sendSplit, topicMaxMessageBytes } from './limits';
import { javaCompatiblePartitioner } from './partitioner';
import type { OutboundMessage } from './producer';
import { RetriableError } from './retry';

export interface InboundMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Headers;
  timestamp: string;
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The DLQ copy of a poison message: same key and value, its original headers, plus the stage
 * and error (DESIGN.md) and where it came from, so it can be inspected and re-injected. Stage,
 * source topic, partition and offset together name the copy: a reader can drop repeats by them.
 */
export function deadLetterRecord(message: InboundMessage, stage: string, error: unknown): OutboundMessage {
  return {
    key: message.key,
    value: message.value,
    headers: {
      ...message.headers,
      [HEADER_STAGE]: stage,
      [HEADER_ERROR]: errorText(error).slice(0, 1_000),
      [HEADER_SOURCE_TOPIC]: message.topic,
      [HEADER_SOURCE_PARTITION]: String(message.partition),
      [HEADER_SOURCE_OFFSET]: message.offset,
    },
  };
}

/**
 * A dead-letter record the DLQ topic accepts: one whose value alone is above the limit keeps
 * only its headers (source topic, partition and offset say where to read it).
 */
export function boundedDeadLetter(record: OutboundMessage, limitBytes: number): OutboundMessage {
  if (!exceedsLimit(record, limitBytes)) return record;
  const size = record.value === null ? 0 : Buffer.byteLength(record.value);
  const headers = {
    ...record.headers,
    [HEADER_ERROR]: `${record.headers?.[HEADER_ERROR] ?? ''} (value of ${size} bytes left out: above the DLQ limit)`.slice(0, 1_100),
  };
  return { ...record, value: null, headers };
}

/** One message bound for the DLQ, with the offset it was read at. */
export interface DeadLetter {
  offset: string;
  record: OutboundMessage;
}

interface PartitionProducer {
  producer: Producer;
  /** The group's committed offset when this producer fenced the previous one. */
  committedAtFence: bigint;
  /** What one produce request to the DLQ topic may carry (its max.message.bytes less a margin). */
  dlqLimitBytes: number;
}

export interface DeadLetterWriterOptions {
  kafka: Kafka;
  groupId: string;
  dlqTopic: string;
  logger: Logger;
  transactionTimeoutMs?: number;
  /** Fault injection for tests: runs after the DLQ copies are sent, before the commit. */
  afterSend?(): Promise<void>;
}

const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * Writes DLQ copies and the consumer group's offset past them in one Kafka transaction, so a
 * crash between the two cannot leave a copy whose source message is read and dead-lettered
 * again: either both happen or neither (readers of the DLQ must read committed records, the
 * kafkajs default).
 *
 * The transactional id is `<group>:<topic>:<partition>`, one producer per input partition, made
 * on the first dead letter there. Making it fences the producer of any earlier owner of the
 * partition (its open transaction is aborted, its later ones fail), and only then is the group's
 * committed offset read: copies below it were written by that owner and are not sent again.
 */
export class DeadLetterWriter {
  private readonly producers = new Map<string, PartitionProducer>();

  constructor(private readonly options: DeadLetterWriterOptions) {}

  /**
   * Sends the copies (in offset order) and commits `nextOffset` for the partition, atomically.
   * Returns the group's committed offset when it is already past `nextOffset` (a previous
   * owner got further), so the caller does not commit below it. A failure throws a
   * RetriableError; the producer is dropped and the next call fences again.
   */
  async commit(topic: string, partition: number, nextOffset: bigint, letters: DeadLetter[]): Promise<{ sent: number; committed: bigint }> {
    const key = partitionKey(topic, partition);
    let entry = this.producers.get(key);
    try {
      entry ??= await this.fence(topic, partition);
      this.producers.set(key, entry);
      const fresh = letters.filter((l) => BigInt(l.offset) >= entry!.committedAtFence);
      if (nextOffset <= entry.committedAtFence) return { sent: 0, committed: entry.committedAtFence };
      const txn = await entry.producer.transaction();
      try {
        const limit = entry.dlqLimitBytes;
        await sendSplit(
          txn,
          this.options.dlqTopic,
          fresh.map((l) => boundedDeadLetter(l.record, limit)),
          limit,
        );
        await this.options.afterSend?.();
        await txn.sendOffsets({
          consumerGroupId: this.options.groupId,
          topics: [{ topic, partitions: [{ partition, offset: nextOffset.toString() }] }],
        });
        await txn.commit();
      } catch (error) {
        if (txn.isActive()) await txn.abort().catch(() => undefined);
        throw error;
      }
      return { sent: fresh.length, committed: nextOffset };
    } catch (error) {
      this.producers.delete(key);
      if (entry) void entry.producer.disconnect().catch(() => undefined);
      this.options.logger.warn(
        { ...errorFields(error), topic, partition },
        'dead-letter transaction failed; the next attempt fences again',
      );
      throw new RetriableError(`dead-letter transaction failed: ${errorText(error)}`, { cause: error });
    }
  }

  private async fence(topic: string, partition: number): Promise<PartitionProducer> {
    const o = this.options;
    const producer = o.kafka.producer({
      transactionalId: `${o.groupId}:${topic}:${partition}`,
      createPartitioner: javaCompatiblePartitioner,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      transactionTimeout: o.transactionTimeoutMs ?? 60_000,
    });
    await producer.connect();
    try {
      // InitProducerId: bumps the epoch and aborts the previous owner's open transaction.
      const fence = await producer.transaction();
      await fence.abort();
      const admin = o.kafka.admin();
      await admin.connect();
      try {
        const [offsets] = await admin.fetchOffsets({ groupId: o.groupId, topics: [topic] });
        const committed = offsets?.partitions.find((p) => p.partition === partition)?.offset ?? '-1';
        const dlqLimitBytes = (await topicMaxMessageBytes(admin, o.dlqTopic)) - PUBLISH_MARGIN_BYTES;
        return { producer, committedAtFence: BigInt(committed) < 0n ? 0n : BigInt(committed), dlqLimitBytes };
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw error;
    }
  }

  /** Drops the producers of partitions no longer assigned (after a rebalance). */
  retain(assigned: Record<string, number[]>): void {
    const keep = new Set(Object.entries(assigned).flatMap(([topic, partitions]) => partitions.map((p) => partitionKey(topic, p))));
    for (const [key, entry] of this.producers) {
      if (keep.has(key)) continue;
      this.producers.delete(key);
      void entry.producer.disconnect().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const entries = [...this.producers.values()];
    this.producers.clear();
    await Promise.all(entries.map((e) => e.producer.disconnect().catch(() => undefined)));
  }
}
