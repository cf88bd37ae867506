import type { Kafka, Message, Producer, ProducerConfig } from 'kafkajs';
import { errorFields, type Logger } from '@cdp/log';
import { counter, histogram } from '@cdp/metrics';
import type { Headers } from './headers';
import { recordBytes, splitByBytes } from './limits';
import { javaCompatiblePartitioner } from './partitioner';

export interface OutboundMessage {
  key: string | null;
  value: string | Buffer | null;
  headers?: Headers;
  /** Explicit partition (dedup writes to the partition number it read from). */
  partition?: number;
}

const produced = counter({
  name: 'cdp_kafka_produced_messages_total',
  help: 'Messages acknowledged by Kafka (acks=all), by topic',
  labelNames: ['topic'] as const,
});
const produceFailures = counter({
  name: 'cdp_kafka_produce_failures_total',
  help: 'Produce requests that failed after the client retries, by topic',
  labelNames: ['topic'] as const,
});
const produceDuration = histogram({
  name: 'cdp_kafka_produce_duration_seconds',
  help: 'Time from enqueue to acknowledgement of a send (includes batching wait)',
});
const produceBatchSize = histogram({
  name: 'cdp_kafka_produce_batch_messages',
  help: 'Messages per produce request sent to Kafka',
  buckets: [1, 5, 10, 50, 100, 500, 1000, 5000, 10000],
});

/** Thrown by withDeadline: Kafka did not answer in time. */
export class DeadlineError extends Error {}

/** `p`, or a DeadlineError after `ms` (the Kafka call itself is not cancelled). */
export function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      // unref: a pending deadline alone does not keep a stopping process alive.
      timer = setTimeout(() => reject(new DeadlineError(`no answer from kafka within ${ms} ms`)), ms).unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

function sizeOf(messages: OutboundMessage[]): number {
  let bytes = 0;
  for (const m of messages) bytes += recordBytes(m);
  return bytes;
}

interface Pending {
  topic: string;
  messages: OutboundMessage[];
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  stop: () => void;
}

export interface BatchingProducerOptions {
  logger: Logger;
  /** Most messages in one produce request. */
  maxBatchMessages?: number;
  /**
   * Most bytes (keys + values) in one produce request; below the broker's `message.max.bytes`
   * (1 MiB by default), which applies to each partition's record batch.
   */
  maxBatchBytes?: number;
  /** kafkajs producer options (retry, transactionalId...). Idempotence and acks=all are fixed. */
  producerConfig?: Omit<ProducerConfig, 'idempotent'>;
  /** Broker-side wait for in-sync replicas, ms. */
  ackTimeoutMs?: number;
  /**
   * Client-side deadline of one produce request, retries included (default: the ack timeout
   * plus 10 s). A request past it fails its sends, and the producer is replaced.
   */
  requestDeadlineMs?: number;
}

const producerReplaced = counter({
  name: 'cdp_kafka_producer_replaced_total',
  help: 'Idempotent producers replaced by a fresh one after a failed or overdue produce request',
});

/**
 * An idempotent, acks=all producer that groups concurrent `send` calls into one produce
 * request at a time ("group commit"). One request in flight keeps the idempotent sequence
 * numbers and per-partition order safe in kafkajs while still batching under load: callers
 * arriving during a request ride the next one. `send` resolves only once Kafka acknowledged.
 *
 * A request that fails or passes its deadline fails its sends, and the kafkajs producer is
 * replaced before the next request: kafkajs advances an idempotent producer's sequence numbers
 * only on success, so after a request the broker may have written anyway, the next one would
 * reuse its sequence numbers and be refused as out of order for good, or, with the same record
 * count, acknowledged as a duplicate without being written. A fresh producer id starts clean
 * (the failed sends' callers retry them: at least once).
 */
export class BatchingProducer {
  private producer: Producer;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  /** The owner connected this producer (and has not disconnected it): sends are taken. */
  private started = false;
  /** The current kafkajs producer is connected. */
  private connected = false;
  private connecting: Promise<void> | undefined;
  private readonly maxBatch: number;
  private readonly maxBytes: number;
  private readonly deadlineMs: number;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: BatchingProducerOptions,
  ) {
    this.maxBatch = options.maxBatchMessages ?? 10_000;
    this.maxBytes = options.maxBatchBytes ?? 900_000;
    this.deadlineMs = options.requestDeadlineMs ?? (options.ackTimeoutMs ?? 30_000) + 10_000;
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: javaCompatiblePartitioner,
      ...this.options.producerConfig,
      idempotent: true,
      maxInFlightRequests: 1,
    });
  }

  /** Connects the current kafkajs producer; concurrent callers share one attempt. */
  private connectCurrent(): Promise<void> {
    const producer = this.producer;
    this.connecting ??= withDeadline(producer.connect(), this.deadlineMs)
      .then(() => {
        if (this.producer === producer) this.connected = true;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  /** After a failed request: a fresh producer (new producer id), connected before the next request. */
  private replaceProducer(): void {
    const old = this.producer;
    this.producer = this.newProducer();
    this.connected = false;
    this.connecting = undefined;
    producerReplaced.inc();
    void withDeadline(old.disconnect(), 5_000).catch(() => undefined);
  }

  async connect(): Promise<void> {
    await this.connectCurrent();
    this.started = true;
  }

  /**
   * Connected by its owner and taking sends. Stays true while a replacement producer connects
   * after a failed request: sends wait for it (or fail if it cannot connect), so owners count
   * those failures rather than seeing an idle, "disconnected" producer.
   */
  get isConnected(): boolean {
    return this.started;
  }

  send(topic: string, messages: OutboundMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    if (!this.started) return Promise.reject(new Error('producer is not connected'));
    const bytes = sizeOf(messages);
    if (bytes > this.maxBytes || messages.length > this.maxBatch) {
      // Too large for one request (the broker would refuse it on every retry): consecutive
      // parts, queued in order; the send resolves when all of them are acknowledged.
      const parts = splitByBytes(messages, this.maxBytes).flatMap((g) =>
        Array.from({ length: Math.ceil(g.length / this.maxBatch) }, (_, i) => g.slice(i * this.maxBatch, (i + 1) * this.maxBatch)),
      );
      return Promise.all(parts.map((part) => this.enqueue(topic, part, sizeOf(part)))).then(() => undefined);
    }
    return this.enqueue(topic, messages, bytes);
  }

  private enqueue(topic: string, messages: OutboundMessage[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, messages, bytes, resolve, reject, stop: produceDuration.startTimer() });
      this.flushing ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    // Let callers of the same tick join the first request.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      if (!this.connected) {
        try {
          await this.connectCurrent();
        } catch (error) {
          // Broker unreachable: what waits fails now (callers retry); the next send tries again.
          this.options.logger.warn(errorFields(error), 'kafka producer connect failed');
          const queued = this.queue;
          this.queue = [];
          for (const p of queued) p.reject(error);
          break;
        }
      }
      const batch: Pending[] = [];
      let count = 0;
      let bytes = 0;
      const fits = (p: Pending) => count + p.messages.length <= this.maxBatch && bytes + p.bytes <= this.maxBytes;
      while (this.queue.length > 0 && (batch.length === 0 || fits(this.queue[0]))) {
        const next = this.queue.shift()!;
        batch.push(next);
        count += next.messages.length;
        bytes += next.bytes;
      }
      const byTopic = new Map<string, Message[]>();
      for (const p of batch) {
        const list = byTopic.get(p.topic) ?? [];
        for (const m of p.messages) list.push(m as Message);
        byTopic.set(p.topic, list);
      }
      try {
        await withDeadline(
          this.producer.sendBatch({
            acks: -1,
            timeout: this.options.ackTimeoutMs ?? 30_000,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
          }),
          this.deadlineMs,
        );
        produceBatchSize.observe(count);
        for (const [topic, messages] of byTopic) produced.labels(topic).inc(messages.length);
        for (const p of batch) {
          p.stop();
          p.resolve();
        }
      } catch (error) {
        for (const topic of byTopic.keys()) produceFailures.labels(topic).inc();
        this.options.logger.warn({ ...errorFields(error), messages: count }, 'kafka produce failed; replacing the producer');
        for (const p of batch) p.reject(error);
        this.replaceProducer();
      }
    }
    this.flushing = undefined;
  }

  /** Waits for queued sends, then disconnects. */
  async disconnect(): Promise<void> {
    this.started = false;
    while (this.flushing) await this.flushing;
    this.connected = false;
    await this.producer.disconnect();
  }
}
