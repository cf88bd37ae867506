import { createLogger } from '@cdp/log';
import { requireEnv, testSize, testTopicPrefix, waitFor } from '@cdp/testkit';
import { BatchingProducer, CompactedTopicMap, createKafka, ensureTopics, topicSpecs, type OutboundMessage } from './index';

const logger = createLogger({ name: 'follower-int', level: 'warn' });
const kafka = () => createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'follower-int', logger });

async function compactedTopic(label: string, partitions: number): Promise<string> {
  const spec = topicSpecs({ prefix: testTopicPrefix(label), replicationFactor: 1, defaultPartitions: partitions }).regulations;
  const admin = kafka().admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [spec]);
  } finally {
    await admin.disconnect();
  }
  return spec.name;
}

interface State {
  version: number;
}

describe('CompactedTopicMap on the real broker', () => {
  it('catches up only after a backlog of many fetches per partition, then follows updates and tombstones', async () => {
    const topic = await compactedTopic('follower', 2);
    // KAFKA_TEST_BACKLOG_MB per partition (4 MB in CI, as worker.int.test.ts; more for a longer
    // run, README): records of 3 KB, every key written twice (the second wins), one in ten then
    // deleted. The catch-up takes several of kafkajs's 1 MiB fetches per partition.
    const keys = Math.round((testSize('KAFKA_TEST_BACKLOG_MB', 4, { min: 2 }) * 1024 * 1024) / 3_000 / 10) * 10;
    const padding = 'p'.repeat(3_000);
    const record = (i: number, version: number): OutboundMessage => ({
      key: `u${i}`,
      value: JSON.stringify({ version, padding }),
      partition: i % 2,
    });
    const producer = new BatchingProducer(kafka(), { logger });
    await producer.connect();
    const backlog: OutboundMessage[] = [];
    for (let i = 0; i < keys; i++) backlog.push(record(i, 1));
    for (let i = 0; i < keys; i++) backlog.push(record(i, 2));
    for (let i = 0; i < keys; i += 10) backlog.push({ key: `u${i}`, value: null, partition: i % 2 });
    backlog.push({ key: 'broken', value: '{not json', partition: 0 });
    for (let i = 0; i < backlog.length; i += 500) await producer.send(topic, backlog.slice(i, i + 500));

    let sizeAtCatchUp = -1;
    let versionsAtCatchUp = new Set<number>();
    const map: CompactedTopicMap<State> = new CompactedTopicMap<State>({
      kafka: kafka(),
      topic,
      logger,
      groupPrefix: 'follower-int',
      decode: (_key, value) => {
        const { version } = JSON.parse(value.toString('utf8')) as State;
        return { version };
      },
      onCaughtUp: () => {
        sizeAtCatchUp = map.size;
        versionsAtCatchUp = new Set(Array.from({ length: keys }, (_, i) => map.get(`u${i}`)?.version ?? 0));
      },
    });
    expect(map.follower.readiness().ok).toBe(false);
    map.start();
    try {
      await waitFor(() => map.caughtUp, 120_000, 100);
      // Everything that was in the topic at start was applied before it said so.
      expect(sizeAtCatchUp).toBe(keys - keys / 10);
      expect(versionsAtCatchUp).toEqual(new Set([0, 2]));
      expect(map.get('u0')).toBeUndefined();
      expect(map.get('u1')).toEqual({ version: 2 });
      expect(map.get('broken')).toBeUndefined();
      expect(map.follower.readiness()).toEqual({ ok: true, detail: `following ${topic}` });

      // Follows what comes after: an update, a new key, a tombstone.
      await producer.send(topic, [record(1, 3), record(keys, 1), { key: 'u3', value: null, partition: 1 }]);
      await waitFor(() => map.get('u1')?.version === 3 && map.get(`u${keys}`) !== undefined && map.get('u3') === undefined, 30_000);
      expect(map.size).toBe(keys - keys / 10);
    } finally {
      await map.stop();
      await producer.disconnect();
    }
  }, 240_000);
});
