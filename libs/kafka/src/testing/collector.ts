import crypto from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { sleep } from '@cdp/lifecycle';
import { FETCH_MAX_WAIT_MS } from '../client';
import { toInbound, type InboundMessage } from '../consumer';

export interface WaitForCountOptions {
  /** After the count is reached, also wait until nothing new arrived for this long (default 0). */
  quietMs?: number;
  /** Give up after this long and return what arrived (default 30 s). */
  timeoutMs?: number;
}

const POLL_MS = 50;

/**
 * Follows a topic from the beginning with a group of its own (read_committed, as a service
 * reads), keeping every record decoded by `decode`. `decode` must not throw: a decoder that can
 * fail should return its failure as a value, so the test sees it.
 */
export class TopicCollector<T = InboundMessage> {
  readonly all: T[] = [];
  private readonly consumed = new Map<number, bigint>();
  private lastArrival = 0;
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: Kafka,
    readonly topic: string,
    private readonly decode: (message: InboundMessage) => T = (message) => message as T,
  ) {}

  async start(): Promise<this> {
    const consumer = this.kafka.consumer({
      groupId: `${this.topic}.collector-${crypto.randomBytes(4).toString('hex')}`,
      sessionTimeout: 6_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.received(this.decode(toInbound(this.topic, partition, message)));
        this.lastArrival = Date.now();
        this.consumed.set(partition, BigInt(message.offset) + 1n);
      },
    });
    return this;
  }

  /** Called for each record in read order; subclasses index here. */
  protected received(value: T): void {
    this.all.push(value);
  }

  /**
   * Waits until everything written to the topic before the call was read (throws after
   * `timeoutMs`): a record absent afterwards was not in the topic then.
   */
  async catchUp(timeoutMs = 30_000): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    let offsets: { partition: number; high: string; low: string }[];
    try {
      offsets = await admin.fetchTopicOffsets(this.topic);
    } finally {
      await admin.disconnect();
    }
    const until = Date.now() + timeoutMs;
    while (!offsets.every((o) => BigInt(o.high) <= BigInt(o.low) || (this.consumed.get(o.partition) ?? 0n) >= BigInt(o.high))) {
      if (Date.now() > until) throw new Error(`collector did not catch up with ${this.topic} within ${timeoutMs} ms`);
      await sleep(POLL_MS);
    }
  }

  /** Waits until `done(all)` holds; false when `timeoutMs` passed first. */
  async until(done: (all: T[]) => boolean, timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.all)) {
      if (Date.now() > deadline) return false;
      await sleep(POLL_MS);
    }
    return true;
  }

  /**
   * Waits until at least `count` records arrived (and then none for `quietMs`, to catch extra
   * ones), or the time is up; returns all records so far either way, so the test's assertion
   * shows the difference.
   */
  async waitForCount(count: number, options: WaitForCountOptions = {}): Promise<T[]> {
    const quietMs = options.quietMs ?? 0;
    await this.until((all) => all.length >= count && Date.now() - this.lastArrival >= quietMs, options.timeoutMs);
    return [...this.all];
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/** Reads a topic from the beginning until `waitForCount(count, options)`; the records in read order. */
export async function readTopic<T = InboundMessage>(
  kafka: Kafka,
  topic: string,
  count: number,
  options: WaitForCountOptions & { decode?: (message: InboundMessage) => T } = {},
): Promise<T[]> {
  const collector = await new TopicCollector<T>(kafka, topic, options.decode).start();
  try {
    return await collector.waitForCount(count, options);
  } finally {
    await collector.stop();
  }
}
