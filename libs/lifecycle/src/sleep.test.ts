import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { sleep } from './sleep';

const SLEEP_JS = path.join(__dirname, '..', 'dist', 'sleep.js');

/** Runs `code` in a fresh node with `sleep` in scope; its stdout and how long it ran. */
function runNode(code: string): { out: string; ms: number } {
  const started = Date.now();
  const r = spawnSync(process.execPath, ['-e', `const { sleep } = require(${JSON.stringify(SLEEP_JS)}); ${code}`], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return { out: r.stdout, ms: Date.now() - started };
}

describe('sleep', () => {
  it('resolves after the time, not before', async () => {
    const started = Date.now();
    await sleep(60);
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('keeps the process alive until it resolves; with unref it does not', () => {
    expect(runNode("sleep(100).then(() => console.log('woke'))").out).toBe('woke\n');
    // A 60 s unref'd wait: the process exits at once, the promise never resolving.
    const unref = runNode("sleep(60_000, { unref: true }).then(() => console.log('woke'))");
    expect(unref.out).toBe('');
    expect(unref.ms).toBeLessThan(30_000);
  });
});
