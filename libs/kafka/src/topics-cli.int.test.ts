// cdp-topics (dist/topics-cli.js) as a process against the real broker.
import { createLogger } from '@cdp/log';
import { requireEnv, testTopicPrefix } from '@cdp/testkit';
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import { createKafka, createTopicsServed, topicNames } from './index';
import { runKafkaCli, type CliResult } from './testing/run-cli';

const logger = createLogger({ name: 'topics-cli-int', level: 'warn' });

function cdpTopics(command: string, env: Record<string, string>): Promise<CliResult> {
  return runKafkaCli('topics-cli.js', [command], { KAFKA_REPLICATION_FACTOR: '1', KAFKA_TOPIC_PARTITIONS: '2', ...env });
}

describe('cdp-topics against the real broker', () => {
  let admin: Admin;
  beforeAll(async () => {
    admin = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'topics-cli-int', logger }).admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin.disconnect();
  });

  it('check names every missing topic; create makes the whole table, then check passes', async () => {
    const prefix = testTopicPrefix('cli');
    const names = Object.values(topicNames(prefix));
    expect(names).toContain(`${prefix}regulation-status`);
    const env = { CDP_TOPIC_PREFIX: prefix, DEDUP_WINDOW_MS: '3600000' };

    const before = await cdpTopics('check', env);
    expect(before.code).toBe(1);
    expect(before.stderr.trim().split('\n').sort()).toEqual(names.map((n) => `${n}: missing`).sort());

    const created = await cdpTopics('create', env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(names.every((n) => created.stdout.includes(`created ${n}\n`))).toBe(true);
    const status = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: `${prefix}regulation-status` }],
    });
    expect(status.resources[0].configEntries.find((e) => e.configName === 'cleanup.policy')?.configValue).toBe('compact');

    const after = await cdpTopics('check', env);
    expect([after.code, after.stderr]).toEqual([0, '']);

    // Another dedup window is a wrong cdp.deduped retention: check names it, create reconciles it.
    const otherWindow = { ...env, DEDUP_WINDOW_MS: '7200000' };
    const wrong = await cdpTopics('check', otherWindow);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toBe(
      `${prefix}deduped: retention.ms=${3_600_000 + 2 * 86_400_000}, expected ${7_200_000 + 2 * 86_400_000}`,
    );
    const reconciled = await cdpTopics('create', otherWindow);
    expect(reconciled.code).toBe(0);
    expect(reconciled.stdout).toContain(`reconciled configs of ${prefix}deduped\n`);
    expect((await cdpTopics('check', otherWindow)).code).toBe(0);
  });

  it('names a topic with the wrong partition count; create refuses to change it', async () => {
    const prefix = testTopicPrefix('cliwrong');
    await createTopicsServed(admin, [{ topic: `${prefix}dlq`, numPartitions: 1, replicationFactor: 1 }]);
    const env = { CDP_TOPIC_PREFIX: prefix };
    const create = await cdpTopics('create', env);
    expect(create.code).toBe(1);
    expect(create.stderr).toContain(`topic ${prefix}dlq has 1 partitions, expected 2`);
    const check = await cdpTopics('check', env);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain(`${prefix}dlq: 1 partitions, expected 2\n`);
    expect(check.stderr).toContain(`${prefix}dlq: retention.ms=`);
    // The refused create changed nothing.
    expect((await admin.fetchTopicMetadata({ topics: [`${prefix}dlq`] })).topics[0].partitions).toHaveLength(1);
  });
});
