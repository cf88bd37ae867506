import type { Consumer, ConsumerConfig, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { KafkaWorkerEnv } from '@cdp/config';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge, histogram } from '@cdp/metrics';
import { FETCH_MAX_WAIT_MS } from './client';
import { deadLetterRecord, DeadLetterWriter, errorText, type DeadLetter, type InboundMessage } from './dead-letter';
import { decodeHeaders } from './headers';
import { isGroupMembershipError, keepMembership } from './membership';
import { backoffMs, isRetriableError } from './retry';

export type { InboundMessage } from './dead-letter';

export interface Decoded<T> {
  message: InboundMessage;
  value: T;
}

export interface BatchContext {
  topic: string;
  partition: number;
  heartbeat(): Promise<void>;
  /**
   * Marks one message of the chunk as poison found during processing: its DLQ copy is written
   * with the chunk's offset commit, once the handler resolves (dropped if it throws).
   */
  deadLetter(message: InboundMessage, error: unknown): void;
  isRunning(): boolean;
}

export interface CommitAfterWorkConsumerOptions<T> {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  logger: Logger;
  /** Stage name written to `cdp-stage` on dead letters (e.g. `identity`). */
  stage: string;
  dlqTopic: string;
  /** Parses a message; throwing marks it poison (DLQ at once, never retried). */
  decode(message: InboundMessage): T;
  /**
   * The work for a chunk of one partition's messages, in offset order. It must resolve only
   * once its output is durable (e.g. after `await producer.send(...)`): the offsets are
   * committed right after. Throwing a retriable error (see `isRetriable`) retries the chunk
   * with backoff without limit; any other error retries each message of the chunk alone, and
   * a message that fails `maxAttempts` times goes to the DLQ and the partition moves on.
   */
  handle(items: Decoded<T>[], ctx: BatchContext): Promise<void>;
  /** Attempts of one message's handler before its DLQ copy (default 5). */
  maxAttempts?: number;
  /** Which handler errors never count as attempts (default: isRetriableError). */
  isRetriable?(error: unknown): boolean;
  /** Backoff between attempts: doubling from retryInitialMs (200) to retryMaxMs (10 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  maxChunkMessages?: number;
  fromBeginning?: boolean;
  partitionsConsumedConcurrently?: number;
  /** kafkajs consumer options (sessionTimeout, heartbeatInterval, maxBytesPerPartition...). */
  consumerConfig?: Partial<Omit<ConsumerConfig, 'groupId'>>;
  /** Called when kafkajs gives up (a non-retriable crash): the service should shut down. */
  onFatal?(error: unknown): void;
  /** Fault injection for tests: runs after DLQ copies are sent, before their commit. */
  afterDeadLetterSend?(): Promise<void>;
}

/** The worker's settings from libs/config's `kafkaWorkerEnv`, to spread into its options. */
export function workerSettings(
  config: KafkaWorkerEnv,
): Pick<CommitAfterWorkConsumerOptions<unknown>, 'maxAttempts' | 'retryInitialMs' | 'retryMaxMs' | 'consumerConfig'> {
  return {
    maxAttempts: config.KAFKA_WORKER_MAX_ATTEMPTS,
    retryInitialMs: config.KAFKA_WORKER_RETRY_INITIAL_MS,
    retryMaxMs: config.KAFKA_WORKER_RETRY_MAX_MS,
    consumerConfig: { sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS, heartbeatInterval: config.KAFKA_HEARTBEAT_INTERVAL_MS },
  };
}

const processed = counter({
  name: 'cdp_kafka_messages_processed_total',
  help: 'Consumed messages by topic and outcome (ok, dead_letter)',
  labelNames: ['topic', 'outcome'] as const,
});
const retries = counter({
  name: 'cdp_kafka_handler_retries_total',
  help: 'Handler runs that threw and were retried: reason=retriable (no limit) or error (counts against maxAttempts)',
  labelNames: ['topic', 'reason'] as const,
});
const chunkDuration = histogram({
  name: 'cdp_kafka_batch_duration_seconds',
  help: 'Handler time for one chunk of messages, including retries',
  labelNames: ['topic'] as const,
});
const lag = gauge({
  name: 'cdp_kafka_consumer_lag_messages',
  help: 'Messages between the last processed offset and the high watermark, per partition',
  labelNames: ['group', 'topic', 'partition'] as const,
});
const rebalances = counter({
  name: 'cdp_kafka_rebalances_total',
  help: 'Consumer group joins (each one follows a rebalance)',
  labelNames: ['group'] as const,
});

export function toInbound(topic: string, partition: number, m: KafkaMessage): InboundMessage {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ? m.key.toString('utf8') : null,
    value: m.value,
    headers: decodeHeaders(m.headers),
    timestamp: m.timestamp,
  };
}

/** A handler run gave up on its chunk: handle the messages one at a time. */
const ISOLATE = Symbol('isolate');
/** The consumer is stopping or lost the partition: leave the rest to the next owner. */
const STOPPED = Symbol('stopped');

/**
 * A consumer that commits an offset only after the work for that message is done (at least
 * once, never lost), with a bounded retry rule: a message whose handler keeps throwing goes to
 * the DLQ after `maxAttempts` and the partition moves on; retriable errors (a dependency down)
 * are retried without limit. DLQ copies and the offset past them commit in one transaction
 * (DeadLetterWriter), so a re-read does not send a copy twice.
 */
export class CommitAfterWorkConsumer<T> {
  readonly consumer: Consumer;
  private readonly deadLetters: DeadLetterWriter;
  /** Per partition: the group's committed offset a previous owner left past our position. */
  private readonly floors = new Map<string, bigint>();
  private running = false;
  private joined = false;
  private assignedPartitions = 0;
  private fatal: unknown;

  /** How often a member heartbeats, also while a handler runs. */
  private readonly heartbeatIntervalMs: number;

  constructor(private readonly options: CommitAfterWorkConsumerOptions<T>) {
    const o = options;
    const config = { sessionTimeout: 30_000, heartbeatInterval: 3_000, maxWaitTimeInMs: FETCH_MAX_WAIT_MS, ...o.consumerConfig };
    this.heartbeatIntervalMs = config.heartbeatInterval ?? 3_000;
    this.consumer = o.kafka.consumer({ groupId: o.groupId, allowAutoTopicCreation: false, ...config });
    this.deadLetters = new DeadLetterWriter({
      kafka: o.kafka,
      groupId: o.groupId,
      dlqTopic: o.dlqTopic,
      logger: o.logger,
      afterSend: o.afterDeadLetterSend,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      rebalances.labels(o.groupId).inc();
      const assignment = e.payload.memberAssignment;
      this.joined = true;
      this.assignedPartitions = Object.values(assignment).reduce((n, ps) => n + ps.length, 0);
      this.deadLetters.retain(assignment);
      o.logger.info({ assignment }, 'consumer group joined');
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      // kafkajs rejoins after a retriable crash (GROUP_JOIN again); until then not ready.
      this.joined = false;
      o.logger.error({ ...errorFields(e.payload.error), restart: e.payload.restart }, 'kafka consumer crashed');
      if (!e.payload.restart) {
        this.fatal = e.payload.error;
        o.onFatal?.(e.payload.error);
      }
    });
  }

  /** Joined the group and got its assignment (possibly no partitions, when there are more members than partitions). */
  get ready(): boolean {
    return this.running && this.joined && this.fatal === undefined;
  }

  /** For a /readyz check. */
  readiness(): { ok: boolean; detail: string } {
    if (this.fatal !== undefined) return { ok: false, detail: `consumer stopped: ${errorText(this.fatal)}` };
    if (!this.ready) return { ok: false, detail: this.running ? 'joining the consumer group' : 'not running' };
    return { ok: true, detail: `${this.assignedPartitions} partitions of ${this.options.topics.join(', ')}` };
  }

  async start(): Promise<void> {
    const o = this.options;
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: o.topics, fromBeginning: o.fromBeginning ?? true });
    this.running = true;
    await this.consumer.run({
      autoCommit: true,
      // Resolved offsets are committed at most every second mid-batch and after every batch.
      autoCommitInterval: 1_000,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.joined = false;
    // kafkajs waits for the in-flight batch, commits resolved offsets and leaves the group.
    await this.consumer.disconnect();
    await this.deadLetters.close();
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const o = this.options;
    const { batch, heartbeat, isRunning, isStale, commitOffsetsIfNecessary, uncommittedOffsets } = payload;
    const { topic, partition } = batch;
    const floorKey = `${topic}\u0000${partition}`;
    const chunkSize = o.maxChunkMessages ?? 500;
    const alive = () => this.running && isRunning() && !isStale();
    const ctx: BatchContext = { topic, partition, heartbeat, isRunning: alive, deadLetter: () => undefined };
    // Never resolve below what a previous owner committed: kafkajs would move the group back.
    const resolve = (offset: string) => {
      const floor = this.floors.get(floorKey);
      payload.resolveOffset(floor !== undefined && floor - 1n > BigInt(offset) ? (floor - 1n).toString() : offset);
    };

    for (let i = 0; i < batch.messages.length; i += chunkSize) {
      if (!alive()) return;
      const chunk = batch.messages.slice(i, i + chunkSize).map((m) => toInbound(topic, partition, m));
      const letters: DeadLetter[] = [];
      const items: Decoded<T>[] = [];
      for (const message of chunk) {
        try {
          items.push({ message, value: o.decode(message) });
        } catch (error) {
          letters.push(this.letter(message, error));
        }
      }
      if (items.length > 0) {
        const stop = chunkDuration.labels(topic).startTimer();
        const handled = await this.handleChunk(items, ctx);
        stop();
        if (handled === STOPPED) return; // unresolved offsets are re-read by the next owner
        letters.push(...handled);
      }
      const last = chunk[chunk.length - 1];
      if (letters.length > 0) {
        letters.sort((a, b) => (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
        // What kafkajs resolved before this chunk commits first, so it cannot land after the
        // transaction's offset and move the group back.
        await commitOffsetsIfNecessary(uncommittedOffsets());
        const committed = await this.commitDeadLetters(topic, partition, BigInt(last.offset) + 1n, letters, ctx);
        if (committed === STOPPED) return;
        if (committed > BigInt(last.offset) + 1n) this.floors.set(floorKey, committed);
      }
      resolve(last.offset);
      processed.labels(topic, 'ok').inc(chunk.length - letters.length);
      lag.labels(o.groupId, topic, String(partition)).set(Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  private letter(message: InboundMessage, error: unknown): DeadLetter {
    this.options.logger.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, error: errorText(error).slice(0, 500) },
      'poison message routed to the DLQ',
    );
    return { offset: message.offset, record: deadLetterRecord(message, this.options.stage, error) };
  }

  /** The chunk whole; after a non-retriable failure, each message alone. Returns its DLQ copies. */
  private async handleChunk(items: Decoded<T>[], ctx: BatchContext): Promise<DeadLetter[] | typeof STOPPED> {
    const whole = await this.attempt(items, ctx);
    if (whole !== ISOLATE) return whole;
    const letters: DeadLetter[] = [];
    for (const item of items) {
      const one = await this.attempt([item], ctx);
      if (one === STOPPED) return STOPPED;
      letters.push(...(one as DeadLetter[]));
    }
    return letters;
  }

  private async attempt(items: Decoded<T>[], ctx: BatchContext): Promise<DeadLetter[] | typeof ISOLATE | typeof STOPPED> {
    const o = this.options;
    const maxAttempts = o.maxAttempts ?? 5;
    const isRetriable = o.isRetriable ?? isRetriableError;
    let failures = 0;
    let retriableFailures = 0;
    for (;;) {
      const letters: DeadLetter[] = [];
      try {
        await this.heartbeating(ctx, () =>
          o.handle(items, { ...ctx, deadLetter: (message, error) => letters.push(this.letter(message, error)) }),
        );
        return letters;
      } catch (error) {
        const where = {
          ...errorFields(error),
          topic: ctx.topic,
          partition: ctx.partition,
          firstOffset: items[0].message.offset,
          messages: items.length,
        };
        let waitMs: number;
        if (isRetriable(error)) {
          waitMs = backoffMs(++retriableFailures, { initialMs: o.retryInitialMs, maxMs: o.retryMaxMs });
          retries.labels(ctx.topic, 'retriable').inc();
          o.logger.warn({ ...where, retryInMs: waitMs }, 'handler failed with a retriable error; retrying');
        } else if (items.length > 1) {
          retries.labels(ctx.topic, 'error').inc();
          o.logger.warn(where, 'handler failed; handling the chunk one message at a time');
          return ISOLATE;
        } else if (++failures >= maxAttempts) {
          return [this.letter(items[0].message, error)];
        } else {
          waitMs = backoffMs(failures, { initialMs: o.retryInitialMs, maxMs: o.retryMaxMs });
          retries.labels(ctx.topic, 'error').inc();
          o.logger.warn({ ...where, attempt: failures, maxAttempts, retryInMs: waitMs }, 'handler failed; retrying the message');
        }
        if (!(await this.wait(waitMs, ctx))) return STOPPED;
      }
    }
  }

  /**
   * Runs a handler while heartbeating every heartbeat interval. kafkajs heartbeats only between
   * batches and when asked: a chunk slower than the session timeout (a slow store, a director
   * retried) would cost the member its partitions, its commit would fail, and after the rejoin
   * the same chunk would be handled (and its output sent) again, every time, with no end. A
   * membership error here is left to the commit after the work, which then fails as before.
   */
  private async heartbeating<R>(ctx: BatchContext, work: () => Promise<R>): Promise<R> {
    const timer = setInterval(() => void keepMembership(ctx.heartbeat).catch(() => undefined), this.heartbeatIntervalMs);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Waits with heartbeats; false when the consumer stopped or the group is rebalancing (the
   * batch is left for kafkajs to rejoin; its unresolved offsets are read again).
   */
  private async wait(ms: number, ctx: BatchContext): Promise<boolean> {
    const until = Date.now() + ms;
    try {
      while (Date.now() < until) {
        if (!ctx.isRunning()) return false;
        await sleep(Math.min(500, until - Date.now()));
        await keepMembership(ctx.heartbeat);
      }
    } catch {
      return false;
    }
    return ctx.isRunning();
  }

  /** The DLQ copies and the offset past the chunk in one transaction, retried until done. */
  private async commitDeadLetters(
    topic: string,
    partition: number,
    nextOffset: bigint,
    letters: DeadLetter[],
    ctx: BatchContext,
  ): Promise<bigint | typeof STOPPED> {
    for (let attempt = 1; ; attempt++) {
      if (!ctx.isRunning()) return STOPPED;
      try {
        // A member the group already dropped learns it here, before it fences the live owner.
        await keepMembership(ctx.heartbeat);
        const { sent, committed } = await this.deadLetters.commit(topic, partition, nextOffset, letters);
        processed.labels(topic, 'dead_letter').inc(sent);
        return committed;
      } catch (error) {
        if (isGroupMembershipError(error)) return STOPPED;
        const waitMs = backoffMs(attempt, { initialMs: this.options.retryInitialMs, maxMs: this.options.retryMaxMs });
        this.options.logger.warn(
          { ...errorFields(error), topic, partition, retryInMs: waitMs },
          'dead letters not committed yet; retrying',
        );
        if (!(await this.wait(waitMs, ctx))) return STOPPED;
      }
    }
  }
}
