// dedup only verifies its topics at start (cdp-topics creates them): a missing one stops it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKafka, type TopicRole } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { logLines, requireEnv, startServiceProcess, testTopicPrefix, waitServiceExit } from '@cdp/testkit';
import { dedupProcessEnv, logger } from './testing/dedup-harness';

/**
 * Creates `roles` (with config additions) under a fresh prefix, runs dedup on them with `env`
 * until it exits (30 s at most); its exit code and what it printed.
 */
async function runDedupOn(
  label: string,
  roles: TopicRole[],
  configs: Partial<Record<TopicRole, Record<string, string>>>,
  env: Record<string, string>,
): Promise<{ prefix: string; code: number | null | 'still running'; output: string }> {
  const prefix = testTopicPrefix(label);
  const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'dedup-topics-test', logger });
  await createTestTopics(kafka, prefix, { roles, configs });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  try {
    const proc = await startServiceProcess('dedup', { ...dedupProcessEnv(prefix, dataDir), ...env }, { captureOutput: true });
    return { prefix, code: await waitServiceExit(proc, 30_000), output: proc.output() };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

it('refuses to start when one of its topics is missing, naming it', async () => {
  const run = await runDedupOn('dedup-missing', ['ingest', 'dlq'], {}, { KAFKA_ENSURE_TOPICS: 'false' });
  expect(run.code).toBe(1);
  const fatal = logLines(run.output).find((line) => line.msg === 'dedup failed to start');
  expect(fatal?.err?.message ?? run.output).toBe(`missing Kafka topics: ${run.prefix}deduped (create them with cdp-topics create)`);
});

it('refuses to start when cdp.deduped is kept for less than the dedup window, naming it', async () => {
  const run = await runDedupOn(
    'dedup-short',
    ['ingest', 'deduped', 'dlq'],
    { deduped: { 'retention.ms': '3600000' } },
    { DEDUP_WINDOW_MS: '7200000' },
  );
  expect(run.code).toBe(1);
  expect(run.output).toContain(`${run.prefix}deduped has retention.ms=3600000, shorter than DEDUP_WINDOW_MS=7200000`);
});
