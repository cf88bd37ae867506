// tapi only verifies its topics at start (cdp-topics creates them): a missing one stops it.
import { createTestTopics } from '@cdp/kafka/testing';
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
  await createTestTopics(env.kafka, prefix, { roles: ['regulations', 'regulation-status'] });
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
