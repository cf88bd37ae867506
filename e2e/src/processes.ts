// Runs built services (`services/<name>/dist/main.js`) as real processes for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, REPO_ROOT } from '@cdp/testkit';

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  opsPort: number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startService(name: string, env: Record<string, string>): Promise<ServiceProcess> {
  const opsPort = await freePort();
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'services', name, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', OPS_PORT: String(opsPort), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    opsPort,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Polls /readyz until 200 (or the process dies, or the timeout passes). */
export async function waitReady(proc: ServiceProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited before ready`);
    const ok = await fetch(`http://127.0.0.1:${proc.opsPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms`);
}
