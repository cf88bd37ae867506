import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { metricValue, requireEnv, sleep, testTopicPrefix, waitFor } from '@cdp/testkit';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import {
  BatchingProducer,
  CommitAfterWorkConsumer,
  createKafka,
  createTopicsServed,
  describeTopicConfigs,
  ensureTopics,
  HEADER_ERROR,
  HEADER_STAGE,
  topicMaxMessageBytes,
  topicSpecs,
  waitForTopicLeaders,
} from './index';
import { readTopic } from './testing';

const logger = createLogger({ name: 'kafka-int', level: 'warn' });
const brokers = () => requireEnv('KAFKA_BROKERS');
const testConsumerConfig = { sessionTimeout: 6_000, heartbeatInterval: 1_000 };

function kafka() {
  return createKafka({ brokers: [brokers()], clientId: 'kafka-int', logger });
}

/** Config changes reach the broker's metadata cache shortly after the controller commits them. */
async function waitForTopicConfig(admin: Admin, topic: string, name: string, value: string): Promise<void> {
  await waitFor(async () => (await describeTopicConfigs(admin, [topic]))[topic][name] === value, 10_000, 200);
}

async function createTopics(admin: Admin, prefix: string, partitions = 1) {
  const specs = topicSpecs({ prefix, replicationFactor: 1, defaultPartitions: partitions });
  await ensureTopics(admin, Object.values(specs));
  return specs;
}

describe('kafka lib against the real broker', () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = kafka().admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin.disconnect();
  });

  it('creates topics with the configured partitions and configs, and reconciles drift', async () => {
    const prefix = testTopicPrefix('topics');
    const specs = topicSpecs({
      prefix,
      replicationFactor: 1,
      defaultPartitions: 3,
      partitions: { regulations: 2 },
      dedupWindowMs: 3_600_000,
    });
    const first = await ensureTopics(admin, Object.values(specs));
    expect(first.created.sort()).toEqual(
      Object.values(specs)
        .map((s) => s.name)
        .sort(),
    );

    const meta = await admin.fetchTopicMetadata({ topics: [specs.ingest.name, specs.regulations.name] });
    expect(meta.topics.find((t) => t.name === specs.ingest.name)!.partitions).toHaveLength(3);
    expect(meta.topics.find((t) => t.name === specs.regulations.name)!.partitions).toHaveLength(2);
    const configs = await describeTopicConfigs(admin, [specs.deduped.name, specs.regulations.name, specs.dlq.name]);
    expect(configs[specs.deduped.name]['retention.ms']).toBe(String(3_600_000 + 2 * 86_400_000));
    expect(configs[specs.regulations.name]['cleanup.policy']).toBe('compact');
    expect(configs[specs.dlq.name]['retention.ms']).toBe(String(14 * 86_400_000));
    expect(configs[specs.dlq.name]['min.insync.replicas']).toBe('1');

    // An operator's own setting on a topic, which the spec does not name, survives the next run.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: specs.deduped.name,
          configEntries: Object.entries({ ...specs.deduped.configs, 'max.message.bytes': '2000000' }).map(([name, value]) => ({
            name,
            value,
          })),
        },
      ],
    });
    await waitForTopicConfig(admin, specs.deduped.name, 'max.message.bytes', '2000000');
    // A second run creates nothing; a changed retention is altered in place.
    const changed = topicSpecs({
      prefix,
      replicationFactor: 1,
      defaultPartitions: 3,
      partitions: { regulations: 2 },
      dedupWindowMs: 7_200_000,
    });
    const second = await ensureTopics(admin, Object.values(changed));
    expect(second.created).toEqual([]);
    expect(second.altered).toEqual([changed.deduped.name]);
    await waitForTopicConfig(admin, changed.deduped.name, 'retention.ms', String(7_200_000 + 2 * 86_400_000));
    expect((await describeTopicConfigs(admin, [changed.deduped.name]))[changed.deduped.name]['max.message.bytes']).toBe('2000000');
    // A partition-count mismatch is refused, never "fixed" silently.
    const wrong = topicSpecs({ prefix, replicationFactor: 1, defaultPartitions: 4 });
    await expect(ensureTopics(admin, [wrong.ingest])).rejects.toThrow(/has 3 partitions, expected 4/);
  });

  it('createTopicsServed resolves once every partition of each new topic has a leader; a topic never created times out, named', async () => {
    const prefix = testTopicPrefix('served');
    const topics = ['a', 'b', 'c', 'd'].map((t) => `${prefix}${t}`);
    await createTopicsServed(
      admin,
      topics.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
    );
    const metadata = await admin.fetchTopicMetadata({ topics });
    const led = metadata.topics.map((t) => [t.name, t.partitions.filter((p) => p.leader >= 0).length]);
    expect(led.sort()).toEqual(topics.map((t) => [t, 3]));
    // Its own admin: kafkajs keeps asking for a topic it was once asked about.
    const other = kafka().admin();
    await other.connect();
    try {
      await expect(waitForTopicLeaders(other, [`${prefix}never`], 300)).rejects.toThrow(`topics not served after 300 ms`);
    } finally {
      await other.disconnect();
    }
  });

  it('reads the real batch size limit: the smaller of the topic and broker settings', async () => {
    const prefix = testTopicPrefix('limits');
    const small = `${prefix}small`;
    const plain = `${prefix}plain`;
    await createTopicsServed(admin, [
      { topic: small, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'max.message.bytes', value: '200000' }] },
      { topic: plain, numPartitions: 1, replicationFactor: 1 },
    ]);
    expect(await topicMaxMessageBytes(admin, small)).toBe(200_000);
    const broker = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        {
          type: ConfigResourceTypes.BROKER,
          name: String((await admin.describeCluster()).brokers[0].nodeId),
          configNames: ['message.max.bytes'],
        },
      ],
    });
    const brokerLimit = Number(broker.resources[0].configEntries[0].configValue);
    expect(await topicMaxMessageBytes(admin, plain)).toBe(brokerLimit);
    await expect(topicMaxMessageBytes(admin, `${prefix}missing`)).rejects.toThrow();
  });

  it('makes a produced batch readable after the acks, keys and headers intact', async () => {
    const specs = await createTopics(admin, testTopicPrefix('produce'), 2);
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    const sends = Array.from({ length: 20 }, (_, i) =>
      producer.send(specs.ingest.name, [{ key: `src:m${i}`, value: JSON.stringify({ i }), headers: { h: `v${i}` } }]),
    );
    await Promise.all(sends);
    await producer.disconnect();
    const got = await readTopic(kafka(), specs.ingest.name, 20);
    expect(got).toHaveLength(20);
    const byKey = new Map(got.map((m) => [m.key, m]));
    for (let i = 0; i < 20; i++) {
      const m = byKey.get(`src:m${i}`)!;
      expect(JSON.parse(m.value!.toString())).toEqual({ i });
      expect(m.headers.h).toBe(`v${i}`);
    }
  });

  it('re-reads the batch of a consumer SIGKILLed before it committed (nothing lost)', async () => {
    const specs = await createTopics(admin, testTopicPrefix('sigkill'));
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    await producer.send(
      specs.ingest.name,
      Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
    );
    const groupId = `sigkill-${Math.random().toString(36).slice(2)}`;

    const fixture = path.join(__dirname, '..', 'dist', 'fixtures', 'hanging-consumer.js');
    const child = spawn(process.execPath, [fixture, brokers(), specs.ingest.name, groupId, specs.dlq.name], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const firstOffsets = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /GOT ([\d,]+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`fixture exited early with ${code}`)));
    });
    expect(firstOffsets.split(',')).toHaveLength(10);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const reread: string[] = [];
    const consumer = new CommitAfterWorkConsumer<string>({
      kafka: kafka(),
      groupId,
      topics: [specs.ingest.name],
      logger,
      stage: 'test',
      dlqTopic: specs.dlq.name,
      consumerConfig: testConsumerConfig,
      decode: (m) => m.value!.toString(),
      handle: async (items) => {
        reread.push(...items.map((i) => i.value));
      },
    });
    await consumer.start();
    const deadline = Date.now() + 60_000;
    while (reread.length < 10 && Date.now() < deadline) await sleep(100);
    await consumer.stop();
    await producer.disconnect();
    expect(reread.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`).sort());
  });

  it('routes a poison message to the DLQ with stage and error headers and keeps the partition flowing', async () => {
    const specs = await createTopics(admin, testTopicPrefix('poison'));
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    await producer.send(specs.ingest.name, [
      { key: 'a', value: '{"n":1}' },
      { key: 'poison', value: '{not json' },
      { key: 'b', value: '{"n":2}' },
    ]);
    const handled: number[] = [];
    let failOnce = true;
    const consumer = new CommitAfterWorkConsumer<{ n: number }>({
      kafka: kafka(),
      groupId: `poison-${Math.random().toString(36).slice(2)}`,
      topics: [specs.ingest.name],
      logger,
      stage: 'dedup',
      dlqTopic: specs.dlq.name,
      consumerConfig: testConsumerConfig,
      retryInitialMs: 50,
      decode: (m) => JSON.parse(m.value!.toString()),
      handle: async (items) => {
        // A transient failure is retried in place, not skipped.
        if (failOnce) {
          failOnce = false;
          throw new Error('dependency down');
        }
        handled.push(...items.map((i) => i.value.n));
      },
    });
    await consumer.start();
    const deadline = Date.now() + 30_000;
    while (handled.length < 2 && Date.now() < deadline) await sleep(100);
    await consumer.stop();
    expect(handled).toEqual([1, 2]);

    const dlq = await readTopic(kafka(), specs.dlq.name, 1);
    await producer.disconnect();
    expect(dlq).toHaveLength(1);
    expect(dlq[0].key).toBe('poison');
    expect(dlq[0].value!.toString()).toBe('{not json');
    expect(dlq[0].headers[HEADER_STAGE]).toBe('dedup');
    expect(dlq[0].headers[HEADER_ERROR]).toMatch(/JSON/);
    expect(dlq[0].headers['cdp-source-offset']).toBe('1');
  });
});

/** The topic table under a fresh prefix, created through a throwaway admin client. */
async function freshTopics(label: string) {
  const admin = kafka().admin();
  await admin.connect();
  try {
    return await createTopics(admin, testTopicPrefix(label));
  } finally {
    await admin.disconnect();
  }
}

async function replacedProducers(): Promise<number> {
  return metricValue(await registry.metrics(), 'cdp_kafka_producer_replaced_total');
}

describe('BatchingProducer after a failed request', () => {
  it('fails that request, then goes on with a fresh producer', async () => {
    const specs = await freshTopics('replace');
    // One request may exceed the broker's 1 MiB record batch limit: the broker refuses it.
    const producer = new BatchingProducer(kafka(), { logger, maxBatchBytes: 4_000_000 });
    await producer.connect();
    await producer.send(specs.ingest.name, [{ key: 'before', value: 'ok' }]);
    const replacedBefore = await replacedProducers();
    await expect(producer.send(specs.ingest.name, [{ key: 'huge', value: 'x'.repeat(2_000_000) }])).rejects.toThrow();
    expect(await replacedProducers()).toBe(replacedBefore + 1);
    await producer.send(
      specs.ingest.name,
      Array.from({ length: 10 }, (_, i) => ({ key: `after${i}`, value: 'ok' })),
    );
    await producer.disconnect();
    const got = await readTopic(kafka(), specs.ingest.name, 11);
    expect(got.map((m) => m.key).sort()).toEqual(['before', ...Array.from({ length: 10 }, (_, i) => `after${i}`)].sort());
  });
});

describe('BatchingProducer under load', () => {
  it('splits concurrent sends into requests under the broker message size limit', async () => {
    const specs = await freshTopics('bulk');
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    const value = 'x'.repeat(1_000);
    // 5,000 × 1 KB sent concurrently: several MB, far above the 1 MiB per-batch limit.
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        producer.send(
          specs.ingest.name,
          Array.from({ length: 100 }, (_, j) => ({ key: `k${i}-${j}`, value })),
        ),
      ),
    );
    await producer.disconnect();
    const got = await readTopic(kafka(), specs.ingest.name, 5_000);
    expect(got).toHaveLength(5_000);
  });

  it('splits one send far above the per-request limit into several requests', async () => {
    const specs = await freshTopics('oversize-send');
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    const value = 'y'.repeat(1_000);
    // 3,000 × 1 KB in a single send, to one partition: ~3 MB, three times the broker's limit.
    await producer.send(
      specs.ingest.name,
      Array.from({ length: 3_000 }, (_, i) => ({ key: `k${i}`, value, partition: 0 })),
    );
    await producer.disconnect();
    const got = await readTopic(kafka(), specs.ingest.name, 3_000);
    expect(got).toHaveLength(3_000);
  });
});
