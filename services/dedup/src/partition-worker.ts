import path from 'node:path';
import type { Kafka, Producer } from 'kafkajs';
import {
  boundedDeadLetter,
  deadLetterRecord,
  exceedsLimit,
  javaCompatiblePartitioner,
  keepMembership,
  PUBLISH_MARGIN_BYTES,
  sendSplit,
  topicMaxMessageBytes,
  HEADER_IN_OFFSET,
  HEADER_IN_PARTITION,
  type InboundMessage,
  type OutboundMessage,
} from '@cdp/kafka';
import type { Logger } from '@cdp/log';
import type { DedupConfig } from './config';
import { decide, readIngestRecord, readReceivedAt } from './decide';
import * as m from './metrics';
import { readOutputTail } from './output-reader';
import { committedInputOffset } from './progress';
import { PartitionStore } from './store';

export interface WorkerTopics {
  input: string;
  output: string;
  dlq: string;
}

export interface ChunkResult {
  /** Offset to resolve in the consumer (last offset of the chunk). */
  lastOffset: string;
  accepted: number;
  duplicates: number;
}

/** Thrown when another owner fenced this partition's transactional id: stop, never retry. */
export class FencedError extends Error {
  constructor(partition: number, cause: unknown) {
    super(`partition ${partition}: producer fenced by a newer owner`, { cause });
    this.name = 'FencedError';
  }
}

const FENCED = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED']);

function isFenced(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    if (FENCED.has((e as { type?: string }).type ?? '')) return true;
  }
  return false;
}

let frozenOnce = false;

/**
 * Repairs running at once in this process. Each holds a fetch, a store's write path and the
 * garbage of parsing its records; they share one event loop, so running them one after the
 * other costs little time and bounds memory.
 */
class RepairSlots {
  private running = 0;
  private waiting: Array<() => void> = [];

  async run<T>(limit: number, fn: () => Promise<T>): Promise<T> {
    while (this.running >= limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

const repairSlots = new RepairSlots();

export function crashPoint(config: DedupConfig, point: DedupConfig['DEDUP_FAULT_POINT'], startedAt: number): void {
  if (config.DEDUP_FAULT_POINT !== point || Date.now() - startedAt < config.DEDUP_FAULT_AFTER_MS) return;
  if (config.DEDUP_FAULT_SIGNAL === 'SIGSTOP' && frozenOnce) return;
  if (Math.random() >= config.DEDUP_FAULT_PROBABILITY) return;
  frozenOnce = true;
  // Synchronous: the process stops here, in the middle of the transaction, until SIGCONT.
  process.kill(process.pid, config.DEDUP_FAULT_SIGNAL);
}

/**
 * Owns one input partition P while this process is assigned it:
 * - a transactional producer with id `<group>-<P>`: taking it over fences any previous owner
 *   (a zombie after a GC pause or partition cannot publish or commit any more);
 * - each chunk is published to output partition P and its input offsets are committed in one
 *   Kafka transaction, so output and progress never disagree;
 * - the level store is a cache of the output: on takeover it is repaired from the output tail
 *   (read_committed) past its checkpoint, and input already present there is skipped using the
 *   `cdp-in-offset` header (the seed's recovery rule).
 */
export class PartitionWorker {
  private producer: Producer | undefined;
  private store: PartitionStore | undefined;
  private resumeFrom = -1;
  /** The group's committed input offset at takeover: chunks below it are done (output and DLQ). */
  private committedFrom = 0;
  /** Most bytes per produce request to the output and DLQ topics (read on takeover). */
  private outputLimit = 0;
  private dlqLimit = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();

  constructor(
    private readonly kafka: Kafka,
    private readonly config: DedupConfig,
    private readonly topics: WorkerTopics,
    readonly partition: number,
    readonly generation: number,
    private readonly logger: Logger,
  ) {}

  /** Runs `fn` exclusively (processing, purge and close never interleave on one partition). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  get transactionalId(): string {
    return `${this.config.DEDUP_GROUP_ID}-${this.topics.input}-${this.partition}`;
  }

  /** `heartbeat` keeps group membership alive during a long repair. */
  init(heartbeat: () => Promise<void>): Promise<void> {
    return this.exclusive(async () => {
      const stop = m.rebuildDuration.startTimer();
      const p = this.partition;
      this.store = await PartitionStore.open(path.join(this.config.DEDUP_DATA_DIR, `${this.topics.input}-${p}`), {
        windowMs: this.config.DEDUP_WINDOW_MS,
        bloomFpr: this.config.DEDUP_BLOOM_FPR,
        minBloomCapacity: this.config.DEDUP_BLOOM_MIN_KEYS,
        cacheBytes: this.config.DEDUP_STORE_CACHE_BYTES,
      });
      this.producer = this.kafka.producer({
        transactionalId: this.transactionalId,
        createPartitioner: javaCompatiblePartitioner,
        maxInFlightRequests: 1,
        idempotent: true,
        allowAutoTopicCreation: false,
        transactionTimeout: 60_000,
      });
      await this.producer.connect();
      // A member the group dropped (it was frozen or cut off) must learn it before fencing:
      // its fence would abort the live owner's transaction.
      await keepMembership(heartbeat);
      // InitProducerId with our transactional id: bumps the epoch (fencing the previous owner)
      // and aborts its open transaction before we read the output and the committed offset.
      const fence = await this.producer.transaction();
      await fence.abort();
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        this.outputLimit = (await topicMaxMessageBytes(admin, this.topics.output)) - PUBLISH_MARGIN_BYTES;
        this.dlqLimit = (await topicMaxMessageBytes(admin, this.topics.dlq)) - PUBLISH_MARGIN_BYTES;
        this.committedFrom = await committedInputOffset(admin, this.config.DEDUP_GROUP_ID, this.topics.input, p);
      } finally {
        await admin.disconnect();
      }

      const store = this.store;
      const tail = await repairSlots.run(this.config.DEDUP_REPAIR_CONCURRENCY, () =>
        readOutputTail(
          this.kafka,
          this.topics.output,
          p,
          store.outputOffset + 1,
          async (records) => {
            const keys: Array<{ key: string; receivedAtMs: number }> = [];
            for (const record of records) {
              crashPoint(this.config, 'during-repair', this.startedAt);
              if (Number(record.headers[HEADER_IN_PARTITION] ?? p) !== p) continue;
              keys.push({ key: record.key, receivedAtMs: readReceivedAt(record.value) });
            }
            // One batch per fetch: the store's checkpoint moves with it, so a repair cut short
            // (rebalance, crash) resumes from here.
            await store.record(keys, records[records.length - 1].offset);
            m.repairedKeys.inc(keys.length);
            await keepMembership(heartbeat);
          },
          this.logger,
        ),
      );
      this.resumeFrom = Math.max(tail.lastInOffset + 1, this.committedFrom);
      m.storeKeys.labels(String(p)).set(store.size);
      m.bloomBytes.labels(String(p)).set(store.bloomBytes);
      const seconds = stop();
      this.logger.info(
        { partition: p, repaired: tail.records, resumeFrom: this.resumeFrom, storeKeys: store.size, seconds },
        'partition taken over',
      );
    });
  }

  /** Dedups one chunk (offset order) in one transaction. Throws FencedError if taken over. */
  process(messages: InboundMessage[]): Promise<ChunkResult> {
    return this.exclusive(async () => {
      const store = this.store!;
      const producer = this.producer!;
      const last = messages[messages.length - 1];
      // Already handled: in the output (published by a previous owner whose offsets did not
      // commit), or below the committed offset (input delivered again after a takeover).
      const fresh = messages.filter((msg) => Number(msg.offset) >= this.resumeFrom);
      m.skippedOnResume.inc(messages.length - fresh.length);
      // A committed chunk: nothing to publish, and committing its end would move the group's
      // offset back.
      if (Number(last.offset) < this.committedFrom) return { lastOffset: last.offset, accepted: 0, duplicates: 0 };

      const candidates: Array<{ key: string; receivedAtMs: number; message: InboundMessage; sourceId: string; output: OutboundMessage }> =
        [];
      const poison: OutboundMessage[] = [];
      for (const message of fresh) {
        try {
          const { key, sourceId, receivedAtMs } = readIngestRecord(message.key, message.value);
          const output: OutboundMessage = {
            key,
            value: message.value,
            partition: this.partition,
            headers: { ...message.headers, [HEADER_IN_PARTITION]: String(this.partition), [HEADER_IN_OFFSET]: message.offset },
          };
          // The output topic would refuse it on every retry: the partition would stop.
          if (exceedsLimit(output, this.outputLimit))
            throw new Error(`record larger than the output topic accepts (${this.outputLimit} bytes)`);
          candidates.push({ key, receivedAtMs, message, sourceId, output });
        } catch (error) {
          this.logger.warn(
            { partition: this.partition, offset: message.offset, error: (error as Error).message },
            'poison message routed to the DLQ',
          );
          poison.push(boundedDeadLetter(deadLetterRecord(message, 'dedup', error), this.dlqLimit));
        }
      }
      const seen = await store.lookup([...new Set(candidates.map((c) => c.key))]);
      const stored = new Set(seen.keys());
      const { accepted, duplicates } = decide(candidates, seen, this.config.DEDUP_WINDOW_MS);

      const stop = m.transactionDuration.startTimer();
      let outputLast: number;
      try {
        const txn = await producer.transaction();
        try {
          outputLast = await sendSplit(
            txn,
            this.topics.output,
            accepted.map((c) => c.output),
            this.outputLimit,
            this.partition,
          );
          await sendSplit(txn, this.topics.dlq, poison, this.dlqLimit);
          crashPoint(this.config, 'after-send', this.startedAt);
          await txn.sendOffsets({
            consumerGroupId: this.config.DEDUP_GROUP_ID,
            topics: [{ topic: this.topics.input, partitions: [{ partition: this.partition, offset: String(Number(last.offset) + 1) }] }],
          });
          await txn.commit();
        } catch (error) {
          if (txn.isActive()) await txn.abort().catch(() => undefined);
          throw error;
        }
      } catch (error) {
        if (isFenced(error)) {
          m.fenced.inc();
          throw new FencedError(this.partition, error);
        }
        throw error;
      } finally {
        stop();
      }
      crashPoint(this.config, 'after-commit', this.startedAt);

      if (accepted.length > 0) {
        await store.record(
          accepted.map((c) => ({ key: c.key, receivedAtMs: c.receivedAtMs, replaces: stored.has(c.key) })),
          outputLast >= 0 ? outputLast : store.outputOffset,
        );
      }
      m.accepted.inc(accepted.length);
      for (const d of duplicates) m.duplicates.labels(d.sourceId).inc();
      m.deadLettered.inc(poison.length);
      m.storeKeys.labels(String(this.partition)).set(store.size);
      m.bloomBytes.labels(String(this.partition)).set(store.bloomBytes);
      return { lastOffset: last.offset, accepted: accepted.length, duplicates: duplicates.length };
    });
  }

  purgeExpired(): Promise<number> {
    return this.exclusive(async () => {
      if (!this.store) return 0;
      const purged = await this.store.purgeExpired();
      m.purgedKeys.inc(purged);
      m.storeKeys.labels(String(this.partition)).set(this.store.size);
      return purged;
    });
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      await this.producer?.disconnect().catch(() => undefined);
      await this.store?.close().catch(() => undefined);
      m.storeKeys.remove(String(this.partition));
      m.bloomBytes.remove(String(this.partition));
      this.producer = undefined;
      this.store = undefined;
    });
  }
}
