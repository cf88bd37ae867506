import { randomBytes } from 'node:crypto';
import type { Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge } from '@cdp/metrics';
import { FETCH_MAX_WAIT_MS } from './client';
import { decodeHeaders, type Headers } from './headers';

/** One record of a compacted topic; `value` null is a tombstone (the key was deleted). */
export interface FollowedRecord {
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Headers;
}

export interface CompactedTopicFollowerOptions {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Start of the throwaway consumer group's name (`<prefix>-<random>`), e.g. `cdp-tapi-regulations`. */
  groupPrefix: string;
  /**
   * Applies one record, in offset order per partition; re-applying a record must be harmless
   * (a restart reads the topic again). Returning 'invalid' counts and logs the record as ignored.
   */
  apply(record: FollowedRecord): void | 'invalid';
  /** After each fetched batch was applied (e.g. to update gauges). */
  afterBatch?(): void;
  /** Once, when every partition was read up to its end offset at start. */
  onCaughtUp?(): void;
  consumerConfig?: Partial<Omit<ConsumerConfig, 'groupId'>>;
}

const followedRecords = counter({
  name: 'cdp_kafka_follower_records_total',
  help: 'Records of a followed compacted topic, by outcome (applied, tombstone, invalid)',
  labelNames: ['topic', 'outcome'] as const,
});
const caughtUpGauge = gauge({
  name: 'cdp_kafka_follower_caught_up',
  help: '1 once the follower read its compacted topic up to the end offsets it found at start',
  labelNames: ['topic'] as const,
});

/**
 * Reads a compacted topic (latest state per key) from the beginning and then follows it, calling
 * `apply` for every record, tombstones included. A fresh consumer group per process with no
 * commits: every start reads the topic whole, which is the point. `caughtUp` turns true once
 * every partition was read up to its end offset at start (as a read_committed consumer reads:
 * past aborted records and transaction markers); use it as a readiness check.
 */
export class CompactedTopicFollower {
  private consumer: Consumer | undefined;
  private isCaughtUp = false;
  private running = false;
  private loop: Promise<void> | undefined;
  private invalid = 0;

  constructor(private readonly options: CompactedTopicFollowerOptions) {}

  get caughtUp(): boolean {
    return this.isCaughtUp;
  }

  /** For a /readyz check. */
  readiness(): { ok: boolean; detail: string } {
    return { ok: this.isCaughtUp, detail: this.isCaughtUp ? `following ${this.options.topic}` : `reading ${this.options.topic}` };
  }

  /** Starts in the background, retrying until Kafka answers. */
  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (this.running && !this.consumer) {
      try {
        await this.startConsumer();
      } catch (error) {
        this.options.logger.warn(
          { ...errorFields(error), topic: this.options.topic, retryInMs: backoff },
          'cannot start the compacted-topic follower yet',
        );
        await sleep(backoff, { unref: true });
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  }

  /** Partitions to read up to (exclusive end offset); an empty one is already complete. */
  private async endOffsets(): Promise<Map<number, bigint>> {
    const admin = this.options.kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(this.options.topic);
      return new Map(offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)]));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private async startConsumer(): Promise<void> {
    const o = this.options;
    const targets = await this.endOffsets();
    const consumer = o.kafka.consumer({
      groupId: `${o.groupPrefix}-${randomBytes(6).toString('hex')}`,
      sessionTimeout: 30_000,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      ...o.consumerConfig,
    });
    // kafkajs restarts a consumer after retriable errors itself; after a non-retriable crash it
    // stays stopped, so start over from the beginning (re-applying records is harmless).
    consumer.on(consumer.events.CRASH, (e) => {
      if (e.payload.restart || !this.running || this.consumer !== consumer) return;
      o.logger.warn({ ...errorFields(e.payload.error), topic: o.topic }, 'compacted-topic follower crashed; re-reading the topic');
      this.consumer = undefined;
      void consumer.disconnect().catch(() => undefined);
      this.loop = this.run();
    });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
      const markCaughtUp = () => {
        if (this.isCaughtUp || targets.size > 0) return;
        this.isCaughtUp = true;
        caughtUpGauge.labels(o.topic).set(1);
        o.logger.info({ topic: o.topic }, 'compacted topic read up to its end');
        o.onCaughtUp?.();
      };
      // Progress is the offset the consumer has read past, control records included: a
      // transaction's commit or abort marker can be the last offset of a partition, and kafkajs
      // hides it from eachBatch (a batch of markers only is never handed over at all) but
      // reports it here, after eachBatch, as the batch's lastOffset.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const target = targets.get(payload.partition);
        if (target !== undefined && BigInt(payload.lastOffset) + 1n >= target) {
          targets.delete(payload.partition);
          markCaughtUp();
        }
      });
      markCaughtUp();
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          let applied = 0;
          let tombstones = 0;
          let invalid = 0;
          for (const m of batch.messages) {
            const value = m.value === null || m.value.length === 0 ? null : m.value;
            const record = {
              partition: batch.partition,
              offset: m.offset,
              key: m.key ? m.key.toString('utf8') : null,
              value,
              headers: decodeHeaders(m.headers),
            };
            if (o.apply(record) === 'invalid') {
              invalid++;
              if (this.invalid++ < 10)
                o.logger.warn({ topic: o.topic, partition: batch.partition, offset: m.offset }, 'invalid record ignored');
            } else if (value === null) tombstones++;
            else applied++;
          }
          followedRecords.labels(o.topic, 'applied').inc(applied);
          followedRecords.labels(o.topic, 'tombstone').inc(tombstones);
          followedRecords.labels(o.topic, 'invalid').inc(invalid);
          o.afterBatch?.();
        },
      });
    } catch (error) {
      await consumer.disconnect().catch(() => undefined);
      throw error;
    }
    this.consumer = consumer;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.consumer?.disconnect().catch(() => undefined);
  }
}

export interface CompactedTopicMapOptions<V> extends Omit<CompactedTopicFollowerOptions, 'apply'> {
  /** Parses a record's value; throwing marks the record invalid (ignored, the key keeps its state). */
  decode(key: string, value: Buffer): V;
  /** Called with each value taken into the map (e.g. to report that a regulation was applied). */
  onValue?(key: string, value: V): void;
}

/** The latest value per key of a compacted topic, in memory; a tombstone deletes the key. */
export class CompactedTopicMap<V> {
  private readonly entries = new Map<string, V>();
  readonly follower: CompactedTopicFollower;

  constructor(options: CompactedTopicMapOptions<V>) {
    const { decode, onValue, ...rest } = options;
    this.follower = new CompactedTopicFollower({
      ...rest,
      apply: (record) => {
        if (record.key === null) return 'invalid';
        if (record.value === null) {
          this.entries.delete(record.key);
          return;
        }
        let value: V;
        try {
          value = decode(record.key, record.value);
        } catch {
          return 'invalid';
        }
        this.entries.set(record.key, value);
        onValue?.(record.key, value);
      },
    });
  }

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  get size(): number {
    return this.entries.size;
  }

  get caughtUp(): boolean {
    return this.follower.caughtUp;
  }

  start(): void {
    this.follower.start();
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }
}
