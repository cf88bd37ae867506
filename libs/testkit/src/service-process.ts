// Runs a built service (`services/<name>/dist/main.js`) as a real process for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { sleep } from '@cdp/lifecycle';
import { REPO_ROOT } from './paths';
import { freePort } from './ports';

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  opsPort: number;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Sends `signal` (SIGTERM by default) unless the process already exited; resolves on exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** The Prometheus text of its ops port. */
  metrics(): Promise<string>;
  /** Its stdout and stderr so far, when started with `captureOutput` (else empty). */
  output(): string;
}

export interface ServiceProcessOptions {
  /** Keep stdout/stderr for `output()` (e.g. to check what a service logs) instead of inheriting them. */
  captureOutput?: boolean;
  /** Node flags before main.js (e.g. the chart's nodeFlags, --cpu-prof). */
  nodeArgs?: string[];
}

/**
 * Starts `services/<name>/dist/main.js` with only PATH, LOG_LEVEL, a free OPS_PORT and `env`
 * (nothing else from the test's environment leaks in). Build first (`tsc -b`).
 */
export async function startServiceProcess(
  name: string,
  env: Record<string, string>,
  options: ServiceProcessOptions = {},
): Promise<ServiceProcess> {
  const opsPort = await freePort();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), path.join(REPO_ROOT, 'services', name, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', OPS_PORT: String(opsPort), ...env },
    stdio: ['ignore', options.captureOutput ? 'pipe' : 'inherit', options.captureOutput ? 'pipe' : 'inherit'],
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  child.stderr?.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    opsPort,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    metrics: async () => (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text(),
    output: () => Buffer.concat(chunks).toString('utf8'),
  };
}

/** Polls /readyz until 200; fails early if the process died, or after `timeoutMs`. */
export async function waitServiceReady(proc: ServiceProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${proc.name} exited before ready`);
    const ok = await fetch(`http://127.0.0.1:${proc.opsPort}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms`);
}

/** Its exit code, or 'still running' (and then killed) if it has not exited within `timeoutMs`. */
export async function waitServiceExit(proc: ServiceProcess, timeoutMs: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const running = new Promise<'still running'>((resolve) => (timer = setTimeout(() => resolve('still running'), timeoutMs)));
  const result = await Promise.race([proc.exited, running]);
  clearTimeout(timer);
  if (result === 'still running') await proc.stop('SIGKILL');
  return result;
}
