// A normal start against fresh topics (dedup creates them, joins a new group while the broker
// still elects leaders and loads the coordinator) prints no error-level line: kafkajs's retried
// protocol errors are mapped to debug by @cdp/kafka's log router. Runs dist/main.js (build first).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logLines, startServiceProcess, testTopicPrefix, waitServiceReady } from '@cdp/testkit';
import { dedupProcessEnv } from './testing/dedup-harness';

jest.setTimeout(90_000);

it('dedup started on fresh topics logs no error or fatal line', async () => {
  const prefix = testTopicPrefix('startlog');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedup-startlog-'));
  const proc = await startServiceProcess(
    'dedup',
    {
      ...dedupProcessEnv(prefix, dataDir),
      KAFKA_ENSURE_TOPICS: 'true',
      KAFKA_REPLICATION_FACTOR: '1',
      KAFKA_TOPIC_PARTITIONS: '2',
      LOG_LEVEL: 'warn',
    },
    { captureOutput: true },
  );
  try {
    await waitServiceReady(proc);
    expect(await proc.stop()).toBe(0);
    expect(logLines(proc.output()).filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
  } finally {
    await proc.stop('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
