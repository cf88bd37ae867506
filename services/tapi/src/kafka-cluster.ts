import type { Admin, Kafka } from 'kafkajs';
import { BatchingProducer, topicMaxMessageBytes, withDeadline } from '@cdp/kafka';
import type { Logger } from '@cdp/log';
import type { ClusterSender } from './publisher';

/** One group-commit producer and the sends waiting on it. */
interface Lane {
  producer: BatchingProducer;
  /** Start times of sends waiting for an answer, by send number. */
  inflight: Map<number, number>;
  connecting?: Promise<void>;
}

/**
 * One Kafka cluster as the publisher sees it: a few group-commit acks=all producers ("lanes"),
 * a metadata probe, and a "stalled" flag so that a hung produce (broker gone, client retrying)
 * is not fed more copies of the same events while it hangs.
 *
 * BatchingProducer keeps one request in flight (safe idempotent sequencing in kafkajs), so a
 * request arriving just after a send started waits for that send's ack and then its own. With
 * two lanes (KAFKA_PRODUCERS=2) a request takes the idle one: tapi's events have no order to keep between them
 * (each has its own key and dedup does not depend on order).
 */
export class KafkaCluster implements ClusterSender {
  private lanes: Lane[];
  private readonly admin: Admin;
  /** The admin client's connect, shared by every caller; unset again if it fails. */
  private adminConnecting: Promise<void> | undefined;
  private closed = false;
  private sends = 0;

  constructor(
    private readonly kafka: Kafka,
    readonly topic: string,
    private readonly logger: Logger,
    private readonly stallMs: number,
    laneCount = 1,
    private readonly resetAfterMs = Math.max(20 * stallMs, 30_000),
  ) {
    this.lanes = Array.from({ length: Math.max(1, laneCount) }, () => this.newLane());
    this.admin = kafka.admin({ retry: { retries: 0 } });
  }

  private newLane(): Lane {
    const producer = new BatchingProducer(this.kafka, {
      logger: this.logger,
      // Fail fast so events move to the other cluster or the spool instead of waiting on retries.
      producerConfig: { retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 } },
      ackTimeoutMs: 10_000,
    });
    return { producer, inflight: new Map() };
  }

  get isConnected(): boolean {
    return this.lanes.every((l) => l.producer.isConnected);
  }

  /** True while a send has waited longer than the stall threshold without an answer. */
  get isStalled(): boolean {
    const now = performance.now();
    let oldest = 0;
    for (const lane of this.lanes) for (const t of lane.inflight.values()) oldest = Math.max(oldest, now - t);
    if (oldest > this.resetAfterMs) {
      // A produce request that never answers blocks a group-commit queue for good: replace the
      // producers. The abandoned sends' callers timed out long ago and their events are in the
      // spool or the other cluster.
      this.logger.error({ stalledMs: Math.round(oldest) }, 'kafka producer stalled; replacing it');
      const old = this.lanes;
      this.lanes = old.map(() => this.newLane());
      for (const lane of old) void withDeadline(lane.producer.disconnect(), 5_000).catch(() => undefined);
      return true;
    }
    return oldest > this.stallMs;
  }

  /** One connect attempt per producer at a time; concurrent callers share it. */
  async ensureConnected(): Promise<void> {
    await Promise.all(
      this.lanes.map((lane) => {
        if (lane.producer.isConnected) return Promise.resolve();
        lane.connecting ??= lane.producer.connect().finally(() => {
          lane.connecting = undefined;
        });
        return lane.connecting;
      }),
    );
  }

  async send(topic: string, messages: { key: string; value: string }[]): Promise<void> {
    let lane = this.lanes[0];
    for (const l of this.lanes) if (l.inflight.size < lane.inflight.size) lane = l;
    const id = ++this.sends;
    lane.inflight.set(id, performance.now());
    try {
      await lane.producer.send(topic, messages);
    } finally {
      lane.inflight.delete(id);
    }
  }

  private async connectedAdmin(): Promise<Admin> {
    if (this.closed) throw new Error('kafka cluster closed');
    this.adminConnecting ??= this.admin.connect().catch((error: unknown) => {
      this.adminConnecting = undefined;
      throw error;
    });
    await this.adminConnecting;
    // Closed meanwhile: a request now would connect the admin client again, after close.
    if (this.closed) throw new Error('kafka cluster closed');
    return this.admin;
  }

  /** The largest record batch the topic takes (topic and broker limits; read once). */
  async maxMessageBytes(): Promise<number> {
    return topicMaxMessageBytes(await this.connectedAdmin(), this.topic);
  }

  async probe(): Promise<void> {
    await this.connectedAdmin();
    const meta = await this.admin.fetchTopicMetadata({ topics: [this.topic] });
    const partitions = meta.topics[0]?.partitions ?? [];
    if (partitions.length === 0 || partitions.some((p) => p.leader < 0))
      throw new Error(`topic ${this.topic} has partitions without a leader`);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.lanes.map((l) => l.producer.disconnect().catch(() => undefined)));
    // A connect still in flight (its caller's deadline gave up on it) would open a connection
    // after close that keeps the process alive: disconnect once it settles.
    const connecting = this.adminConnecting;
    if (connecting)
      await withDeadline(
        connecting.then(() => this.admin.disconnect()),
        5_000,
      ).catch(() => undefined);
  }
}
