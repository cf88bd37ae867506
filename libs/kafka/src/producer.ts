import type { Kafka, Message, Producer, ProducerConfig } from 'kafkajs';
import { errorFields, type Logger } from '@cdp/log';
import { counter, histogram } from '@cdp/metrics';
import type { Headers } from './headers';
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

function sizeOf(messages: OutboundMessage[]): number {
  let bytes = 0;
  for (const m of messages) {
    bytes += 70; // record overhead: offsets, timestamps, lengths
    if (m.key) bytes += Buffer.byteLength(m.key);
    if (m.value) bytes += typeof m.value === 'string' ? Buffer.byteLength(m.value) : m.value.length;
    for (const [k, v] of Object.entries(m.headers ?? {})) bytes += k.length + Buffer.byteLength(v);
  }
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
}

/**
 * An idempotent, acks=all producer that groups concurrent `send` calls into one produce
 * request at a time ("group commit"). One request in flight keeps the idempotent sequence
 * numbers and per-partition order safe in kafkajs while still batching under load: callers
 * arriving during a request ride the next one. `send` resolves only once Kafka acknowledged.
 */
export class BatchingProducer {
  private readonly producer: Producer;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private connected = false;
  private readonly maxBatch: number;
  private readonly maxBytes: number;

  constructor(
    kafka: Kafka,
    private readonly options: BatchingProducerOptions,
  ) {
    this.maxBatch = options.maxBatchMessages ?? 10_000;
    this.maxBytes = options.maxBatchBytes ?? 900_000;
    this.producer = kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: javaCompatiblePartitioner,
      ...options.producerConfig,
      idempotent: true,
      maxInFlightRequests: 1,
    });
  }

  async connect(): Promise<void> {
    await this.producer.connect();
    this.connected = true;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  send(topic: string, messages: OutboundMessage[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    if (!this.connected) return Promise.reject(new Error('producer is not connected'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ topic, messages, bytes: sizeOf(messages), resolve, reject, stop: produceDuration.startTimer() });
      this.flushing ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    // Let callers of the same tick join the first request.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
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
        await this.producer.sendBatch({
          acks: -1,
          timeout: this.options.ackTimeoutMs ?? 30_000,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
        produceBatchSize.observe(count);
        for (const [topic, messages] of byTopic) produced.labels(topic).inc(messages.length);
        for (const p of batch) {
          p.stop();
          p.resolve();
        }
      } catch (error) {
        for (const topic of byTopic.keys()) produceFailures.labels(topic).inc();
        this.options.logger.warn({ ...errorFields(error), messages: count }, 'kafka produce failed');
        for (const p of batch) p.reject(error);
      }
    }
    this.flushing = undefined;
  }

  /** Waits for queued sends, then disconnects. */
  async disconnect(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.connected = false;
    await this.producer.disconnect();
  }
}
