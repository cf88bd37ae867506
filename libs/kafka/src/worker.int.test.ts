import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { metricValue, requireEnv, sleep, testSize, testTopicPrefix, waitFor } from '@cdp/testkit';
import {
  BatchingProducer,
  CommitAfterWorkConsumer,
  createKafka,
  ensureTopics,
  HEADER_ERROR,
  HEADER_SOURCE_OFFSET,
  HEADER_SOURCE_PARTITION,
  HEADER_STAGE,
  RetriableError,
  topicSpecs,
  type CommitAfterWorkConsumerOptions,
  type OutboundMessage,
} from './index';
import { readTopic } from './testing';

const logger = createLogger({ name: 'worker-int', level: 'warn' });
const brokers = () => requireEnv('KAFKA_BROKERS');
const kafka = () => createKafka({ brokers: [brokers()], clientId: 'worker-int', logger });
const testConsumerConfig = { sessionTimeout: 6_000, heartbeatInterval: 1_000 };
const newGroup = (label: string) => `${label}-${Math.random().toString(36).slice(2)}`;

// The deep-backlog cases put BACKLOG_MB per partition ahead of the worker, the poison message at
// nine tenths of it: past several of kafkajs's fetches (maxBytesPerPartition, 1 MiB by default;
// the first test counts them). 4 MB in CI; KAFKA_TEST_BACKLOG_MB=12 or more for a longer run (README).
const BACKLOG_MB = testSize('KAFKA_TEST_BACKLOG_MB', 4, { min: 2 });
const BACKLOG_VALUE = 'v'.repeat(2_000);
const BACKLOG_MESSAGES = Math.round((BACKLOG_MB * 1024 * 1024) / BACKLOG_VALUE.length);
const BACKLOG_POISON_AT = Math.floor(BACKLOG_MESSAGES * 0.9);

/** Counts, per partition, the batches (one a fetch) the worker's kafkajs consumer hands it. */
function countBatches(consumer: CommitAfterWorkConsumer<unknown>): Map<number, number> {
  const batches = new Map<number, number>();
  consumer.consumer.on(consumer.consumer.events.START_BATCH_PROCESS, ({ payload }) => {
    if (payload.batchSize > 0) batches.set(payload.partition, (batches.get(payload.partition) ?? 0) + 1);
  });
  return batches;
}

async function freshTopics(label: string, partitions: number, dlqConfigs: Record<string, string> = {}) {
  const specs = topicSpecs({ prefix: testTopicPrefix(label), replicationFactor: 1, defaultPartitions: partitions });
  const admin = kafka().admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [specs.ingest, { ...specs.dlq, configs: { ...specs.dlq.configs, ...dlqConfigs } }]);
  } finally {
    await admin.disconnect();
  }
  return { input: specs.ingest.name, dlq: specs.dlq.name };
}

async function produce(topic: string, messages: OutboundMessage[]): Promise<void> {
  const producer = new BatchingProducer(kafka(), { logger });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 500) await producer.send(topic, messages.slice(i, i + 500));
  } finally {
    await producer.disconnect();
  }
}

async function endOffsets(topic: string): Promise<number[]> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition).map((o) => Number(o.high));
  } finally {
    await admin.disconnect();
  }
}

async function committedOffsets(groupId: string, topic: string): Promise<number[]> {
  const admin = kafka().admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return offsets.partitions.sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset));
  } finally {
    await admin.disconnect();
  }
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  return metricValue(await registry.metrics(), name, labels);
}

/** Runs the worker until the group's committed offsets reach `ends`, then stops it. */
async function runUntilCommitted(
  consumer: CommitAfterWorkConsumer<unknown>,
  groupId: string,
  topic: string,
  ends: number[],
  timeoutMs: number,
): Promise<void> {
  await consumer.start();
  try {
    await waitFor(async () => JSON.stringify(await committedOffsets(groupId, topic)) === JSON.stringify(ends), timeoutMs, 500);
  } finally {
    await consumer.stop();
  }
}

function worker<T>(options: Omit<CommitAfterWorkConsumerOptions<T>, 'kafka' | 'logger' | 'stage'>) {
  return new CommitAfterWorkConsumer<T>({ kafka: kafka(), logger, stage: 'test-stage', consumerConfig: testConsumerConfig, ...options });
}

describe('CommitAfterWorkConsumer: bounded retry, DLQ and readiness on the real broker', () => {
  it('dead-letters a message that keeps failing after maxAttempts and moves on, deep in a backlog of many fetches per partition', async () => {
    const topics = await freshTopics('worker-retry', 2);
    const perPartition = BACKLOG_MESSAGES;
    const poisonAt = BACKLOG_POISON_AT;
    const value = BACKLOG_VALUE;
    const messages: OutboundMessage[] = [];
    for (let i = 0; i < perPartition; i++) {
      for (const partition of [0, 1])
        messages.push({ key: i === poisonAt ? `poison-${partition}` : `k${partition}-${i}`, value, partition });
    }
    await produce(topics.input, messages);
    expect(await endOffsets(topics.input)).toEqual([perPartition, perPartition]);

    const dlqBefore = await metric('cdp_kafka_messages_processed_total', { topic: topics.input, outcome: 'dead_letter' });
    const handled = new Set<string>();
    const poisonAttempts = new Map<string, number>();
    const groupId = newGroup('retry');
    const consumer = worker<string>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      maxAttempts: 3,
      retryInitialMs: 20,
      decode: (m) => m.key!,
      handle: async (items) => {
        const poison = items.find((i) => i.value.startsWith('poison'));
        if (poison) {
          if (items.length === 1) poisonAttempts.set(poison.value, (poisonAttempts.get(poison.value) ?? 0) + 1);
          throw new Error(`cannot handle ${poison.value}`);
        }
        for (const i of items) handled.add(i.value);
      },
    });
    const batches = countBatches(consumer);
    await runUntilCommitted(consumer, groupId, topics.input, [perPartition, perPartition], 180_000);
    expect(handled.size).toBe(2 * perPartition - 2);
    expect(Math.min(batches.get(0) ?? 0, batches.get(1) ?? 0)).toBeGreaterThan(1);
    expect(Object.fromEntries(poisonAttempts)).toEqual({ 'poison-0': 3, 'poison-1': 3 });
    expect(await metric('cdp_kafka_messages_processed_total', { topic: topics.input, outcome: 'dead_letter' })).toBe(dlqBefore + 2);

    const dlq = await readTopic(kafka(), topics.dlq, 2, { quietMs: 2_000 });
    expect(dlq.map((m) => m.key).sort()).toEqual(['poison-0', 'poison-1']);
    for (const m of dlq) {
      const partition = m.key === 'poison-0' ? '0' : '1';
      expect(m.headers[HEADER_STAGE]).toBe('test-stage');
      expect(m.headers[HEADER_ERROR]).toBe(`cannot handle ${m.key}`);
      expect(m.headers[HEADER_SOURCE_PARTITION]).toBe(partition);
      expect(m.headers[HEADER_SOURCE_OFFSET]).toBe(String(poisonAt));
      expect(m.value!.toString()).toBe(value);
    }
  }, 300_000);

  it('retries a retriable error past maxAttempts, never dead-letters it, and holds the partition meanwhile', async () => {
    const topics = await freshTopics('worker-retriable', 1);
    await produce(
      topics.input,
      Array.from({ length: 20 }, (_, i) => ({ key: `m${i}`, value: String(i) })),
    );
    const retriableBefore = await metric('cdp_kafka_handler_retries_total', { topic: topics.input, reason: 'retriable' });
    const order: number[] = [];
    let outages = 0;
    const groupId = newGroup('retriable');
    const consumer = worker<number>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      maxAttempts: 2,
      retryInitialMs: 20,
      retryMaxMs: 100,
      maxChunkMessages: 4,
      decode: (m) => Number(m.value!.toString()),
      handle: async (items) => {
        // The dependency is down for the chunk holding message 5 for six attempts, three times maxAttempts.
        if (items.some((i) => i.value === 5) && outages < 6) {
          outages++;
          throw new Error('store unavailable', { cause: new RetriableError('connection refused') });
        }
        order.push(...items.map((i) => i.value));
      },
    });
    await runUntilCommitted(consumer, groupId, topics.input, [20], 60_000);
    expect(outages).toBe(6);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await metric('cdp_kafka_handler_retries_total', { topic: topics.input, reason: 'retriable' })).toBe(retriableBefore + 6);
    expect(await endOffsets(topics.dlq)).toEqual([0]);
  }, 120_000);

  it('keeps its partitions through a chunk slower than the session timeout: the chunk is handled once and committed', async () => {
    const topics = await freshTopics('worker-slow', 1);
    await produce(
      topics.input,
      Array.from({ length: 10 }, (_, i) => ({ key: `m${i}`, value: String(i) })),
    );
    const handled: number[] = [];
    const groupId = newGroup('slow');
    // The first chunk takes twice the session timeout (a slow store). Without heartbeats while it
    // runs, the group drops the member, the commit fails and the chunk is handled again after
    // every rejoin: `handled` would hold it several times and the offsets never reach the end.
    const consumer = worker<number>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      maxChunkMessages: 5,
      consumerConfig: { ...testConsumerConfig, sessionTimeout: 3_000, heartbeatInterval: 500 },
      decode: (m) => Number(m.value!.toString()),
      handle: async (items) => {
        if (items[0].value === 0) await sleep(6_000);
        handled.push(...items.map((i) => i.value));
      },
    });
    await runUntilCommitted(consumer, groupId, topics.input, [10], 60_000);
    expect(handled).toEqual(Array.from({ length: 10 }, (_, i) => i));
  }, 120_000);

  it('lets a rebalance through while it waits out a retriable error', async () => {
    const topics = await freshTopics('worker-rebalance', 2);
    await produce(
      topics.input,
      Array.from({ length: 20 }, (_, i) => ({ key: `m${i}`, value: String(i), partition: i % 2 })),
    );
    const groupId = newGroup('rebalance');
    // The coordinator waits this long for every member to rejoin; a member stuck in its batch
    // would hold the new one back for all of it.
    const consumerConfig = { ...testConsumerConfig, rebalanceTimeout: 60_000 };
    const stuck = worker<number>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      consumerConfig,
      retryInitialMs: 200,
      retryMaxMs: 1_000,
      decode: (m) => Number(m.value!.toString()),
      handle: async () => {
        throw new RetriableError('dependency down');
      },
    });
    const handled = new Set<number>();
    const healthy = worker<number>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      consumerConfig,
      decode: (m) => Number(m.value!.toString()),
      handle: async (items) => {
        for (const i of items) handled.add(i.value);
      },
    });
    await stuck.start();
    try {
      await waitFor(() => stuck.readiness().detail.startsWith('2 partitions'), 30_000);
      await healthy.start();
      await waitFor(
        () => healthy.readiness().detail.startsWith('1 partitions') && stuck.readiness().detail.startsWith('1 partitions'),
        30_000,
      );
      await waitFor(() => handled.size === 10, 30_000);
    } finally {
      await stuck.stop();
    }
    try {
      await waitFor(() => handled.size === 20, 60_000);
    } finally {
      await healthy.stop();
    }
    expect(await endOffsets(topics.dlq)).toEqual([0, 0]);
  }, 180_000);

  it('does not send a DLQ copy twice when the worker dies between the DLQ send and the commit', async () => {
    const topics = await freshTopics('worker-crash', 1);
    // The poison message deep in the backlog: the worker gets there after several fetches.
    const total = BACKLOG_MESSAGES;
    const poisonAt = BACKLOG_POISON_AT;
    await produce(
      topics.input,
      Array.from({ length: total }, (_, i) => ({ key: i === poisonAt ? 'poison' : `k${i}`, value: BACKLOG_VALUE })),
    );
    const groupId = newGroup('crash');
    const fixture = path.join(__dirname, '..', 'dist', 'fixtures', 'hanging-consumer.js');
    const child = spawn(process.execPath, [fixture, brokers(), topics.input, groupId, topics.dlq, 'dead-letter'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('SENT')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`fixture exited early with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // The commit never passed the poison message: the next owner reads it again.
    expect((await committedOffsets(groupId, topics.input))[0]).toBeLessThanOrEqual(poisonAt);

    const handled = new Set<string>();
    const consumer = worker<string>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      maxAttempts: 1,
      decode: (m) => m.key!,
      handle: async (items) => {
        if (items.some((i) => i.value === 'poison')) throw new Error('refused');
        for (const i of items) handled.add(i.value);
      },
    });
    await runUntilCommitted(consumer, groupId, topics.input, [total], 120_000);
    expect(handled.has(`k${total - 1}`)).toBe(true);
    // The killed worker's copy was sent (its transaction left open, then aborted by the new
    // owner's fence); the new owner's copy is the one readers see.
    const dlq = await readTopic(kafka(), topics.dlq, 1, { quietMs: 2_000 });
    expect(dlq.map((m) => m.key)).toEqual(['poison']);
    expect(dlq[0].headers[HEADER_SOURCE_OFFSET]).toBe(String(poisonAt));
  }, 240_000);

  it('dead-letters a message larger than the DLQ topic accepts without its value, and moves on', async () => {
    const topics = await freshTopics('worker-dlq-size', 1, { 'max.message.bytes': '200000' });
    await produce(topics.input, [
      { key: 'a', value: 'small' },
      { key: 'big', value: 'x'.repeat(400_000) },
      { key: 'b', value: 'small' },
    ]);
    const groupId = newGroup('dlq-size');
    const consumer = worker<string>({
      groupId,
      topics: [topics.input],
      dlqTopic: topics.dlq,
      decode: (m) => {
        if (m.key === 'big') throw new Error('not an envelope');
        return m.key!;
      },
      handle: async () => undefined,
    });
    await runUntilCommitted(consumer, groupId, topics.input, [3], 60_000);
    const dlq = await readTopic(kafka(), topics.dlq, 1, { quietMs: 1_000 });
    expect(dlq.map((m) => [m.key, m.value])).toEqual([['big', null]]);
    expect(dlq[0].headers[HEADER_ERROR]).toBe('not an envelope (value of 400000 bytes left out: above the DLQ limit)');
  }, 60_000);

  it('reports ready once it joined the group and got its assignment; stop is prompt (an empty fetch in flight); not ready after stop', async () => {
    const topics = await freshTopics('worker-ready', 3);
    const consumer = worker<null>({
      groupId: newGroup('ready'),
      topics: [topics.input],
      dlqTopic: topics.dlq,
      decode: () => null,
      handle: async () => undefined,
    });
    expect(consumer.readiness()).toEqual({ ok: false, detail: 'not running' });
    await consumer.start();
    await waitFor(() => consumer.ready, 30_000);
    expect(consumer.readiness()).toEqual({ ok: true, detail: `3 partitions of ${topics.input}` });
    // A fetch of the idle topic has just begun: stop waits it out, FETCH_MAX_WAIT_MS (0.5 s), not
    // kafkajs's default 5 s (the rest of the bound is margin for a loaded machine).
    await new Promise<void>((resolve) => consumer.consumer.on(consumer.consumer.events.FETCH_START, () => resolve()));
    const stopping = Date.now();
    await consumer.stop();
    expect(Date.now() - stopping).toBeLessThan(4_000);
    expect(consumer.ready).toBe(false);
  }, 60_000);

  it('reports a crash kafkajs does not restart from to onFatal, and is not ready after it', async () => {
    const topics = await freshTopics('worker-fatal', 1);
    await produce(topics.input, [{ key: 'a', value: '1' }]);
    const fatal: unknown[] = [];
    const consumer = worker<null>({
      groupId: newGroup('fatal'),
      topics: [topics.input],
      dlqTopic: topics.dlq,
      // A service that leaves restarts to kafkajs (the default) sees this only when kafkajs gives up.
      consumerConfig: { ...testConsumerConfig, retry: { retries: 0, restartOnFailure: async () => false } },
      onFatal: (error) => fatal.push(error),
      decode: () => null,
      handle: async () => undefined,
    });
    await consumer.start();
    try {
      await waitFor(() => consumer.ready, 30_000);
      // The input topic disappears under the running consumer: its fetches fail for good.
      const admin = kafka().admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [topics.input] });
      await admin.disconnect();
      await waitFor(() => fatal.length > 0, 60_000);
      expect(fatal).toHaveLength(1);
      expect(consumer.readiness()).toMatchObject({ ok: false, detail: expect.stringMatching(/^consumer stopped: /) });
    } finally {
      await consumer.stop();
    }
  }, 120_000);
});
