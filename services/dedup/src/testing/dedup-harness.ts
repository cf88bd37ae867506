// Test support (not shipped behaviour): run dedup as a real process, feed it envelopes and
// read what it published, through the real broker.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { messageKey, type Envelope } from '@cdp/events';
import { BatchingProducer, createKafka, splitByBytes, type InboundMessage, type OutboundMessage } from '@cdp/kafka';
import { createTestTopics, readTopic, type WaitForCountOptions } from '@cdp/kafka/testing';
import { createLogger, type Logger } from '@cdp/log';
import { requireEnv, startServiceProcess, testTopicPrefix, waitServiceReady, type ServiceProcess } from '@cdp/testkit';
import type { Kafka } from 'kafkajs';

export const logger: Logger = createLogger({ name: 'dedup-test', level: process.env.TEST_LOG_LEVEL ?? 'warn' });

export type DedupProcess = ServiceProcess & { kill(signal?: NodeJS.Signals): Promise<number | null> };

export interface DedupTestEnv {
  /** What `startDedup` started on it, for `close()`. */
  readonly processes: DedupProcess[];
  prefix: string;
  dataDir: string;
  groupId: string;
  kafka: Kafka;
  producer: BatchingProducer;
  partitions: number;
  /** A fresh data directory (another instance's own volume), removed by `close()`. */
  newDataDir(): string;
  /** SIGKILLs the processes `startDedup` started on it that still run, removes its directories; idempotent. */
  close(): Promise<void>;
}

/** `topicConfigs` adds to the spec's configs per topic role (e.g. a smaller max.message.bytes). */
export async function createDedupTestEnv(
  label: string,
  partitions = 2,
  topicConfigs: Partial<Record<'ingest' | 'deduped' | 'dlq', Record<string, string>>> = {},
): Promise<DedupTestEnv> {
  const prefix = testTopicPrefix(label);
  const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: `test-${label}`, logger });
  await createTestTopics(kafka, prefix, { partitions, roles: ['ingest', 'deduped', 'dlq'], configs: topicConfigs });
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const dirs: string[] = [];
  const processes: DedupProcess[] = [];
  const newDataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dedup-${label}-`));
    dirs.push(dir);
    return dir;
  };
  let closed = false;
  return {
    prefix,
    dataDir: newDataDir(),
    groupId: `${prefix}dedup`,
    kafka,
    producer,
    partitions,
    processes,
    newDataDir,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const proc of processes) await proc.kill('SIGKILL');
      await producer.disconnect();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The variables a dedup process needs to run on the harness broker's topics under `prefix`, its volume at `dataDir`. */
export function dedupProcessEnv(prefix: string, dataDir: string): Record<string, string> {
  return {
    KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
    CDP_TOPIC_PREFIX: prefix,
    DEDUP_GROUP_ID: `${prefix}dedup`,
    DEDUP_DATA_DIR: dataDir,
  };
}

export async function startDedup(env: DedupTestEnv, extra: Record<string, string> = {}): Promise<DedupProcess> {
  const proc = await startServiceProcess('dedup', {
    ...dedupProcessEnv(env.prefix, env.dataDir),
    DEDUP_GROUP_ID: env.groupId,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    DEDUP_BLOOM_MIN_KEYS: '10000',
    ...extra,
  });
  const dedup = { ...proc, kill: proc.stop };
  env.processes.push(dedup);
  return dedup;
}

/** Waits until the process answers /readyz 200 (it joined the group), or it died. */
export const waitReady = (proc: DedupProcess, timeoutMs = 60_000) => waitServiceReady(proc, timeoutMs);

export function envelope(sourceId: string, messageId: string, receivedAt: Date): OutboundMessage {
  const value: Envelope = {
    v: 1,
    sourceId,
    messageId,
    receivedAt: receivedAt.toISOString(),
    message: { type: 'track', messageId, userId: 'u1', event: 'Test', receivedAt: receivedAt.toISOString() },
  };
  return { key: messageKey(sourceId, messageId), value: JSON.stringify(value) };
}

/** An envelope padded (in `message.properties.pad`) to about `bytes` of JSON value. */
export function sizedEnvelope(sourceId: string, messageId: string, receivedAt: Date, bytes: number): OutboundMessage {
  const base = envelope(sourceId, messageId, receivedAt);
  const value = JSON.parse(base.value as string) as Envelope & { message: { properties?: Record<string, unknown> } };
  const overhead = Buffer.byteLength(JSON.stringify({ ...value, message: { ...value.message, properties: { pad: '' } } }));
  value.message.properties = { pad: 'x'.repeat(Math.max(0, bytes - overhead)) };
  return { key: base.key, value: JSON.stringify(value) };
}

/** Sends `messages` in slices of at most `sliceBytes`, up to `concurrency` slices in flight. */
export async function produceBulk(
  env: DedupTestEnv,
  topic: string,
  messages: OutboundMessage[],
  sliceBytes = 512 * 1024,
  concurrency = 8,
): Promise<void> {
  const inFlight: Promise<void>[] = [];
  for (const slice of splitByBytes(messages, sliceBytes)) {
    inFlight.push(env.producer.send(topic, slice));
    if (inFlight.length >= concurrency) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
}

/** The keys of `topic`'s records ('(null key)' for none) once `count` arrived and then none for `quietMs`. */
export async function readOutputKeys(
  env: DedupTestEnv,
  topic: string,
  count: number,
  { quietMs = 3_000, timeoutMs = 90_000 }: WaitForCountOptions = {},
): Promise<string[]> {
  return (await readTopic(env.kafka, topic, count, { quietMs, timeoutMs })).map(recordKey);
}

export const recordKey = (message: InboundMessage): string => message.key ?? '(null key)';

/** Keys that are missing from `out` or appear more than once, against the expected set. */
export function exactlyOnceViolations(
  out: string[],
  expected: Set<string>,
): { missing: string[]; repeated: string[]; unexpected: string[] } {
  const counts = new Map<string, number>();
  for (const k of out) counts.set(k, (counts.get(k) ?? 0) + 1);
  return {
    missing: [...expected].filter((k) => !counts.has(k)),
    repeated: [...counts].filter(([, n]) => n > 1).map(([k]) => k),
    unexpected: [...counts.keys()].filter((k) => !expected.has(k)),
  };
}

/** How many keys are missing, repeated and unexpected: NO_VIOLATIONS when `out` holds each expected key once. */
export function violationCounts(out: string[], expected: Set<string>): { missing: number; repeated: number; unexpected: number } {
  const v = exactlyOnceViolations(out, expected);
  return { missing: v.missing.length, repeated: v.repeated.length, unexpected: v.unexpected.length };
}

export const NO_VIOLATIONS = { missing: 0, repeated: 0, unexpected: 0 };

/**
 * A stream of `unique` ids in which about `dupRate` of the messages are copies of earlier ones
 * (as client retries are), fed in slices while `running()` so that kills hit live traffic.
 */
export function makeStreamWithDuplicates(sourceId: string, unique: number, dupRate: number, t0 = Date.UTC(2026, 0, 1)) {
  const messages: OutboundMessage[] = [];
  const expected = new Set<string>();
  for (let i = 0; i < unique; i++) {
    const id = `m${i}`;
    messages.push(envelope(sourceId, id, new Date(t0 + i)));
    expected.add(`${sourceId}:${id}`);
    if (Math.random() < dupRate / (1 - dupRate)) {
      const j = Math.floor(Math.random() * (i + 1));
      messages.push(envelope(sourceId, `m${j}`, new Date(t0 + i)));
    }
  }
  return { messages, expected };
}

export async function feed(
  env: DedupTestEnv,
  topic: string,
  messages: OutboundMessage[],
  sliceSize: number,
  pauseMs: number,
): Promise<void> {
  for (let i = 0; i < messages.length; i += sliceSize) {
    await env.producer.send(topic, messages.slice(i, i + sliceSize));
    await new Promise((r) => setTimeout(r, pauseMs));
  }
}
