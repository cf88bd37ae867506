import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { sleep } from '@cdp/lifecycle';

export interface ManagedProcess {
  name: string;
  pid: number;
  logFile: string;
}

/**
 * Starts a long-running dependency in its own process group (so stopping it also stops
 * anything it forks), with stdout/stderr appended to `logFile`. It outlives the caller:
 * `pnpm infra up` exits while the dependencies keep running.
 */
export function spawnDaemon(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string },
): ManagedProcess {
  const fd = fs.openSync(options.logFile, 'a');
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`${name}: failed to start ${command}`);
  child.unref();
  return { name, pid: child.pid, logFile: options.logFile };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM the process group, then SIGKILL it if it is still there after `timeoutMs`. */
export async function stopProcess(pid: number, timeoutMs = 10_000): Promise<void> {
  if (!isAlive(pid)) return;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) signalGroup(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(50);
}

/** Synchronous last-resort kill, usable from a process 'exit' handler. */
export function killNow(pid: number): void {
  signalGroup(pid, 'SIGKILL');
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Polls `check` until it returns true. Fails early, with the end of the process log, when the
 * process died, and after `timeoutMs` otherwise.
 */
export async function waitUntilReady(proc: ManagedProcess, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive(proc.pid)) throw new Error(`${proc.name} exited during start-up:\n${tail(proc.logFile)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${proc.name} not ready after ${timeoutMs} ms:\n${tail(proc.logFile)}`);
    }
    await sleep(250);
  }
}
