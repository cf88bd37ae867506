// KafkaCluster against the real broker, in a process of its own (dist/testing/cluster-close-process.js;
// build first): close() must leave nothing open, even with an admin connect still in flight. An
// in-process tapi stopped that way kept jest running for 10+ minutes after the last test.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { requireEnv, testTopicPrefix } from '@cdp/testkit';

/** Runs the fixture; `exited` is false if it was still running after `boundMs` (then killed). */
function runFixture(boundMs: number): Promise<{ exited: boolean; code: number | null; stdout: string }> {
  const script = path.join(__dirname, '..', 'dist', 'testing', 'cluster-close-process.js');
  const child = spawn(process.execPath, [script], {
    env: { PATH: process.env.PATH ?? '', KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'), TOPIC: `${testTopicPrefix('close')}ingest` },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  return new Promise((resolve) => {
    // A liveness bound only: a process with nothing open exits at once.
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ exited: false, code: null, stdout });
    }, boundMs);
    child.once('exit', (code) => {
      clearTimeout(bound);
      resolve({ exited: true, code, stdout });
    });
  });
}

it('a process that closes a KafkaCluster while its admin client is still connecting exits by itself', async () => {
  const run = await runFixture(20_000);
  expect(run.stdout).toContain('closed');
  expect(run).toMatchObject({ exited: true, code: 0 });
});
