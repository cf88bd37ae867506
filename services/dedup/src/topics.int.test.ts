// dedup only verifies its topics at start (cdp-topics creates them): a missing one stops it.
import { createKafka } from '@cdp/kafka';
import { requireEnv, startServiceProcess, testTopicPrefix, waitServiceExit } from '@cdp/testkit';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from './testing/dedup-harness';

it('refuses to start when one of its topics is missing, naming it', async () => {
  const prefix = testTopicPrefix('dedup-missing');
  const admin = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'dedup-topics-test', logger }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [`${prefix}ingest`, `${prefix}dlq`].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })),
    waitForLeaders: true,
  });
  await admin.disconnect();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedup-missing-'));
  try {
    const proc = await startServiceProcess(
      'dedup',
      {
        KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
        CDP_TOPIC_PREFIX: prefix,
        DEDUP_GROUP_ID: `${prefix}dedup`,
        DEDUP_DATA_DIR: dataDir,
        KAFKA_ENSURE_TOPICS: 'false',
      },
      { captureOutput: true },
    );
    expect(await waitServiceExit(proc, 30_000)).toBe(1);
    const fatal =
      proc
        .output()
        .split('\n')
        .find((line) => line.includes('dedup failed to start')) ?? proc.output();
    expect(fatal).toContain(`missing Kafka topics: ${prefix}deduped (create them with cdp-topics create)`);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

it('refuses to start when cdp.deduped is kept for less than the dedup window, naming it', async () => {
  const prefix = testTopicPrefix('dedup-short');
  const admin = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'dedup-topics-test', logger }).admin();
  await admin.connect();
  const retention = (topic: string) => (topic.endsWith('deduped') ? [{ name: 'retention.ms', value: '3600000' }] : []);
  await admin.createTopics({
    topics: [`${prefix}ingest`, `${prefix}deduped`, `${prefix}dlq`].map((topic) => ({
      topic,
      numPartitions: 1,
      replicationFactor: 1,
      configEntries: retention(topic),
    })),
    waitForLeaders: true,
  });
  await admin.disconnect();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedup-short-'));
  try {
    const proc = await startServiceProcess(
      'dedup',
      {
        KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
        CDP_TOPIC_PREFIX: prefix,
        DEDUP_GROUP_ID: `${prefix}dedup`,
        DEDUP_DATA_DIR: dataDir,
        DEDUP_WINDOW_MS: '7200000',
      },
      { captureOutput: true },
    );
    expect(await waitServiceExit(proc, 30_000)).toBe(1);
    expect(proc.output()).toContain(`${prefix}deduped has retention.ms=3600000, shorter than DEDUP_WINDOW_MS=7200000`);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
