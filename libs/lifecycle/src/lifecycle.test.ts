import { spawn } from 'node:child_process';
import path from 'node:path';
import { createLogger } from '@cdp/log';
import { Lifecycle } from './index';

const logger = createLogger({ name: 'test', level: 'silent' });
const FIXTURE = path.join(__dirname, '..', 'dist', 'fixtures', 'shutdown-fixture.js');

function runFixture(args: string[]): Promise<{ code: number | null; out: string; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let signalledAt = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (!signalledAt && out.includes('READY')) {
        signalledAt = Date.now();
        child.kill('SIGTERM');
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out, elapsedMs: Date.now() - signalledAt }));
  });
}

describe('Lifecycle (real process, SIGTERM)', () => {
  it('runs hooks in order and exits 0 within the deadline', async () => {
    const { code, out } = await runFixture(['5000']);
    expect(out.match(/HOOK \w+/g)).toEqual(['HOOK first', 'HOOK second', 'HOOK last']);
    expect(code).toBe(0);
  });

  it('cuts a hanging hook at the deadline and exits non-zero', async () => {
    const { code, out, elapsedMs } = await runFixture(['800', 'hang']);
    expect(out.match(/HOOK \w+/g)).toEqual(['HOOK first', 'HOOK second']);
    expect(code).toBe(1);
    // Cut at the deadline, not after some default timeout (generous bound).
    expect(elapsedMs).toBeLessThan(10_000);
  });
});

describe('Lifecycle (in process)', () => {
  it('runs once even when shutdown is requested twice, and exits 1 after a failing hook', async () => {
    const exits: number[] = [];
    const calls: string[] = [];
    const lifecycle = new Lifecycle({ logger, deadlineMs: 1000, exit: (c) => exits.push(c) });
    lifecycle.onShutdown('a', () => {
      calls.push('a');
      throw new Error('boom');
    });
    lifecycle.onShutdown('b', () => {
      calls.push('b');
    });
    const [first, second] = await Promise.all([lifecycle.shutdown(), lifecycle.shutdown()]);
    expect(first).toBe(1);
    expect(second).toBe(1);
    expect(calls).toEqual(['a', 'b']);
    expect(exits).toEqual([1]);
  });

  it("without a deadline ('none', in-process runs) lets a slow hook finish and runs the later ones", async () => {
    const calls: string[] = [];
    const lifecycle = new Lifecycle({ logger, deadlineMs: 'none', exit: () => undefined });
    lifecycle.onShutdown('slow', async () => {
      await new Promise((r) => setTimeout(r, 300));
      calls.push('slow');
    });
    lifecycle.onShutdown('after', () => {
      calls.push('after');
    });
    expect(await lifecycle.shutdown()).toBe(0);
    expect(calls).toEqual(['slow', 'after']);
  });

  it('rejects duplicate hook names and reports a fatal cause as exit 1', async () => {
    const exits: number[] = [];
    const lifecycle = new Lifecycle({ logger, deadlineMs: 1000, exit: (c) => exits.push(c) });
    lifecycle.onShutdown('x', () => undefined);
    expect(() => lifecycle.onShutdown('x', () => undefined)).toThrow(/twice/);
    expect(await lifecycle.shutdown(new Error('fatal'))).toBe(1);
  });
});
