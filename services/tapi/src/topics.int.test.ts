// tapi only verifies its topics at start (cdp-topics creates them): a missing one stops it.
import { logLines, startServiceProcess, testTopicPrefix, waitServiceExit } from '@cdp/testkit';
import { createTapiTestEnv, type TapiTestEnv } from './testing/harness';

let env: TapiTestEnv;
beforeAll(async () => {
  env = await createTapiTestEnv('topics');
});
afterAll(async () => {
  await env.close();
});

it('refuses to start when one of its topics is missing, naming it', async () => {
  const prefix = testTopicPrefix('tapi-missing');
  const admin = env.kafka.admin();
  await admin.connect();
  // One at a time: kafkajs's waitForLeaders on several new topics can fail on the one not hosted yet.
  for (const role of ['regulations', 'regulation-status'])
    await admin.createTopics({ topics: [{ topic: `${prefix}${role}`, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();
  const { OPS_PORT: _opsPort, LOG_LEVEL: _logLevel, ...base } = env.baseEnv;
  const proc = await startServiceProcess(
    'tapi',
    { ...base, CDP_TOPIC_PREFIX: prefix, KAFKA_ENSURE_TOPICS: 'false' },
    { captureOutput: true },
  );
  expect(await waitServiceExit(proc, 30_000)).toBe(1);
  const fatal = logLines(proc.output()).find((line) => line.msg === 'tapi failed to start');
  expect(fatal?.err?.message ?? proc.output()).toBe(`missing Kafka topics: ${prefix}ingest (create them with cdp-topics create)`);
});
