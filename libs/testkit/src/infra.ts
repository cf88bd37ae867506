import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseComponents, startComponent, type ComponentName, type Started } from './components';
import { INFRA_DIR } from './paths';
import { isAlive, killNow, stopProcess, type ManagedProcess } from './process';
import { newRunId, runAgeMs, SWEEP_AGE_MS } from './run-id';

export interface InfraState {
  runId: string;
  dir: string;
  components: ComponentName[];
  env: Record<string, string>;
  processes: ManagedProcess[];
  dirs: string[];
}

const STATE_FILE = path.join(INFRA_DIR, 'state.json');
const ENV_FILE = path.join(INFRA_DIR, 'env');

/** Deletes scratch folders of earlier runs older than an hour (crashed, never cleaned). */
function sweepScratchDirs(now = Date.now()): void {
  const tmp = os.tmpdir();
  for (const entry of fs.readdirSync(tmp)) {
    const run = /^cdp-infra-([0-9a-z]+)$/.exec(entry)?.[1];
    const age = run ? runAgeMs(run, now) : undefined;
    if (age !== undefined && age > SWEEP_AGE_MS) fs.rmSync(path.join(tmp, entry), { recursive: true, force: true });
  }
}

/**
 * Starts the named dependencies in parallel. If any fails, the ones already started are
 * stopped before the error is rethrown, so a failed start leaves no process behind.
 */
export async function startInfra(components: ComponentName[], runId = newRunId()): Promise<InfraState> {
  sweepScratchDirs();
  const dir = path.join(os.tmpdir(), `cdp-infra-${runId}`);
  fs.mkdirSync(dir, { recursive: true });
  const results = await Promise.allSettled(components.map((c) => startComponent(c, { dir })));
  const started = results.filter((r): r is PromiseFulfilledResult<Started> => r.status === 'fulfilled').map((r) => r.value);
  const state: InfraState = {
    runId,
    dir,
    components,
    env: Object.assign({ CDP_TEST_RUN: runId }, ...started.map((s) => s.env)),
    processes: started.flatMap((s) => s.processes),
    dirs: [...started.flatMap((s) => s.dirs), dir],
  };
  const failures = results.flatMap((r, i) =>
    r.status === 'rejected' ? [`${components[i]}: ${(r.reason as Error)?.message ?? r.reason}`] : [],
  );
  if (failures.length > 0) {
    await stopInfra(state);
    throw new Error(`infra start failed:\n${failures.join('\n')}`);
  }
  return state;
}

export async function stopInfra(state: InfraState): Promise<void> {
  await Promise.all(state.processes.map((p) => stopProcess(p.pid, 15_000)));
  for (const d of state.dirs) fs.rmSync(d, { recursive: true, force: true });
}

/** Kills every process of `state` synchronously: for 'exit' handlers on interruption. */
export function killInfraNow(state: InfraState): void {
  for (const p of state.processes) killNow(p.pid);
}

export function writeInfraFiles(state: InfraState): void {
  fs.mkdirSync(INFRA_DIR, { recursive: true });
  fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2));
  const lines = Object.entries(state.env).map(([k, v]) => `${k}=${v}`);
  fs.writeFileSync(ENV_FILE, lines.join('\n') + '\n');
}

/** The state of a running `pnpm infra up`, or undefined if none or if its processes died. */
export function readLiveInfra(): InfraState | undefined {
  if (!fs.existsSync(STATE_FILE)) return undefined;
  const state = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as InfraState;
  return state.processes.every((p) => isAlive(p.pid)) ? state : undefined;
}

export async function infraUp(componentList?: string): Promise<{ state: InfraState; reused: boolean }> {
  const wanted = parseComponents(componentList);
  const live = readLiveInfra();
  if (live && wanted.every((c) => live.components.includes(c))) return { state: live, reused: true };
  if (live || fs.existsSync(STATE_FILE)) await infraDown();
  const state = await startInfra(wanted);
  writeInfraFiles(state);
  return { state, reused: false };
}

export async function infraDown(): Promise<InfraState | undefined> {
  if (!fs.existsSync(STATE_FILE)) return undefined;
  const state = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as InfraState;
  await stopInfra(state);
  fs.rmSync(STATE_FILE, { force: true });
  fs.rmSync(ENV_FILE, { force: true });
  return state;
}
