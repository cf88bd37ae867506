import type { Consumer, ConsumerConfig, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge, histogram } from '@cdp/metrics';
import {
  decodeHeaders,
  HEADER_ERROR,
  HEADER_SOURCE_OFFSET,
  HEADER_SOURCE_PARTITION,
  HEADER_SOURCE_TOPIC,
  HEADER_STAGE,
  type Headers,
} from './headers';
import type { BatchingProducer, OutboundMessage } from './producer';

export interface InboundMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer | null;
  headers: Headers;
  timestamp: string;
}

export interface Decoded<T> {
  message: InboundMessage;
  value: T;
}

export interface BatchContext {
  topic: string;
  partition: number;
  heartbeat(): Promise<void>;
  /** Routes one message to the DLQ (poison found during processing); the batch goes on. */
  deadLetter(message: InboundMessage, error: unknown): Promise<void>;
  isRunning(): boolean;
}

export interface CommitAfterWorkConsumerOptions<T> {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  logger: Logger;
  /** Stage name written to `cdp-stage` on dead letters (e.g. `dedup`). */
  stage: string;
  dlqTopic: string;
  /** Used for dead letters; the caller owns its lifecycle. */
  producer: BatchingProducer;
  /** Parses a message; throwing marks it poison (DLQ, never retried). */
  decode(message: InboundMessage): T;
  /**
   * The work for a chunk of one partition's messages, in offset order. Offsets are resolved
   * and committed only after it resolves; if it throws, the chunk is retried with backoff
   * (a dependency is down), never skipped.
   */
  handle(items: Decoded<T>[], ctx: BatchContext): Promise<void>;
  maxChunkMessages?: number;
  fromBeginning?: boolean;
  partitionsConsumedConcurrently?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** kafkajs consumer options (sessionTimeout, heartbeatInterval, maxBytesPerPartition...). */
  consumerConfig?: Partial<Omit<ConsumerConfig, 'groupId'>>;
  /** Called when kafkajs gives up (a non-retriable crash): the service should shut down. */
  onFatal?(error: unknown): void;
}

const processed = counter({
  name: 'cdp_kafka_messages_processed_total',
  help: 'Consumed messages by topic and outcome (ok, dead_letter)',
  labelNames: ['topic', 'outcome'] as const,
});
const handlerFailures = counter({
  name: 'cdp_kafka_handler_failures_total',
  help: 'Chunks whose handler threw and were retried',
  labelNames: ['topic'] as const,
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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The DLQ copy of a poison message: same key and value, its original headers, plus the stage
 * and error (DESIGN.md) and where it came from, so it can be inspected and re-injected.
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

/**
 * A consumer that commits an offset only after the work for that message is done (at least
 * once, never lost). Poison messages go to the DLQ with `cdp-stage`/`cdp-error` headers so the
 * partition keeps flowing; handler failures are retried in place with backoff and heartbeats.
 */
export class CommitAfterWorkConsumer<T> {
  readonly consumer: Consumer;
  private running = false;

  constructor(private readonly options: CommitAfterWorkConsumerOptions<T>) {
    const o = options;
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      ...o.consumerConfig,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      rebalances.labels(o.groupId).inc();
      o.logger.info({ assignment: e.payload.memberAssignment }, 'consumer group joined');
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      o.logger.error({ ...errorFields(e.payload.error), restart: e.payload.restart }, 'kafka consumer crashed');
      if (!e.payload.restart) o.onFatal?.(e.payload.error);
    });
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
    // kafkajs waits for the in-flight batch, commits resolved offsets and leaves the group.
    await this.consumer.disconnect();
  }

  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const o = this.options;
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = payload;
    const { topic, partition } = batch;
    const chunkSize = o.maxChunkMessages ?? 500;
    const alive = () => this.running && isRunning() && !isStale();
    const ctx: BatchContext = {
      topic,
      partition,
      heartbeat,
      isRunning: alive,
      deadLetter: (message, error) => this.deadLetter(message, error),
    };

    for (let i = 0; i < batch.messages.length; i += chunkSize) {
      if (!alive()) return;
      const chunk = batch.messages.slice(i, i + chunkSize).map((m) => toInbound(topic, partition, m));
      const items: Decoded<T>[] = [];
      for (const message of chunk) {
        try {
          items.push({ message, value: o.decode(message) });
        } catch (error) {
          await this.deadLetter(message, error);
        }
      }
      const done = items.length === 0 || (await this.handleWithRetry(items, ctx));
      if (!done) return; // stopping or rebalanced: unresolved offsets are re-read by the next owner
      const last = chunk[chunk.length - 1];
      resolveOffset(last.offset);
      processed.labels(topic, 'ok').inc(items.length);
      lag.labels(o.groupId, topic, String(partition)).set(Math.max(0, Number(batch.highWatermark) - Number(last.offset) - 1));
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  private async handleWithRetry(items: Decoded<T>[], ctx: BatchContext): Promise<boolean> {
    const o = this.options;
    const stop = chunkDuration.labels(ctx.topic).startTimer();
    let delay = o.retryInitialMs ?? 200;
    for (;;) {
      try {
        await o.handle(items, ctx);
        stop();
        return true;
      } catch (error) {
        handlerFailures.labels(ctx.topic).inc();
        o.logger.warn(
          { ...errorFields(error), topic: ctx.topic, partition: ctx.partition, firstOffset: items[0].message.offset, retryInMs: delay },
          'handler failed; retrying the chunk',
        );
      }
      const until = Date.now() + delay;
      while (Date.now() < until) {
        if (!ctx.isRunning()) return false;
        await sleep(Math.min(500, until - Date.now()));
        await ctx.heartbeat().catch(() => undefined);
      }
      if (!ctx.isRunning()) return false;
      delay = Math.min(delay * 2, o.retryMaxMs ?? 10_000);
    }
  }

  private async deadLetter(message: InboundMessage, error: unknown): Promise<void> {
    const o = this.options;
    o.logger.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, error: errorText(error).slice(0, 500) },
      'poison message routed to the DLQ',
    );
    await o.producer.send(o.dlqTopic, [deadLetterRecord(message, o.stage, error)]);
    processed.labels(message.topic, 'dead_letter').inc();
  }
}
