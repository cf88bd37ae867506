import fs from 'node:fs';
import { topicNames } from '@cdp/kafka';
import { metricValue, sleep } from '@cdp/testkit';
import {
  createDedupTestEnv,
  feed,
  logger,
  makeStreamWithDuplicates,
  NO_VIOLATIONS,
  readOutputKeys,
  startDedup,
  violationCounts,
  waitReady,
  type DedupProcess,
} from './testing/dedup-harness';

// Kills per round; `scripts/chaos.sh long` raises them.
const RANDOM_KILLS = Number(process.env.CDP_CHAOS_RANDOM_KILLS ?? 20);
const FIXED_POINT_ROUNDS = Number(process.env.CDP_CHAOS_FIXED_ROUNDS ?? 3);
const CHAOS_ENV = { KAFKA_SESSION_TIMEOUT_MS: '3000', KAFKA_HEARTBEAT_INTERVAL_MS: '500' };

/** Whether the process is stopped by a signal (Linux: state `T` in /proc/<pid>/stat). */
function isStopped(proc: DedupProcess): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${proc.child.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
  } catch {
    return false;
  }
}

async function until(what: string, condition: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Waits for the process to kill itself at its fault point; true if it did before `ms`. */
async function untilExitOr(proc: DedupProcess, ms: number): Promise<boolean> {
  const selfKilled = await Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
  await proc.kill('SIGKILL');
  return selfKilled;
}

describe('dedup crash safety (real broker, real processes)', () => {
  it(`publishes every unique messageId exactly once across ${RANDOM_KILLS} random SIGKILLs and kills at fixed points`, async () => {
    const env = await createDedupTestEnv('crash', 3);
    const topics = topicNames(env.prefix);
    const unique = 300 * (RANDOM_KILLS + 4 * FIXED_POINT_ROUNDS);
    const { messages, expected } = makeStreamWithDuplicates('web', unique, 0.1);
    let kills = 0;
    const fired = { 'after-send': 0, 'after-commit': 0, 'during-repair': 0 };
    type Round = { kind: 'random' } | { kind: 'fixed'; point: keyof typeof fired };
    const rounds: Round[] = [
      ...Array.from({ length: RANDOM_KILLS }, () => ({ kind: 'random' }) as Round),
      ...Array.from({ length: FIXED_POINT_ROUNDS }, () =>
        (['after-send', 'after-commit', 'during-repair'] as const).map((point) => ({ kind: 'fixed', point }) as Round),
      ).flat(),
    ];
    // Every round gets its own slice of the stream, fed in small pieces while the process
    // runs, so each kill (random or at a fault point) lands on live transactions.
    const slice = Math.ceil(messages.length / rounds.length);
    try {
      for (const [i, round] of rounds.entries()) {
        const part = messages.slice(i * slice, (i + 1) * slice);
        if (round.kind === 'random') {
          const proc = await startDedup(env, CHAOS_ENV);
          const feeding = feed(env, topics.ingest, part, 20, 30);
          await waitReady(proc).catch(() => undefined);
          await sleep(300 + Math.random() * 2_500);
          await proc.kill('SIGKILL');
          await feeding;
        } else {
          // A lost store forces the next takeover to repair from the whole output partition.
          if (round.point === 'during-repair') fs.rmSync(env.dataDir, { recursive: true, force: true });
          const probability = round.point === 'during-repair' ? '0.002' : '0.3';
          const proc = await startDedup(env, { ...CHAOS_ENV, DEDUP_FAULT_POINT: round.point, DEDUP_FAULT_PROBABILITY: probability });
          await waitReady(proc).catch(() => undefined);
          // Slowly, so the process runs many transactions (each one a chance to hit the point).
          const feeding = feed(env, topics.ingest, part, 20, 100);
          if (await untilExitOr(proc, 20_000)) fired[round.point]++;
          await feeding;
        }
        kills++;
      }
      const survivor = await startDedup(env, CHAOS_ENV);
      await waitReady(survivor);
      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 5_000, timeoutMs: 180_000 });
      await survivor.kill('SIGTERM');
      logger.warn({ kills, fired, input: messages.length, unique: expected.size, output: out.length }, 'crash test');
      expect(kills).toBeGreaterThanOrEqual(RANDOM_KILLS + 3 * FIXED_POINT_ROUNDS);
      // Each fixed point really was hit at least once (the process killed itself there).
      for (const n of Object.values(fired)) expect(n).toBeGreaterThan(0);
      expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
      expect(out).toHaveLength(expected.size);
    } finally {
      await env.close();
    }
  });

  it('fences a frozen owner: its open transaction fails after it resumes and every id is published once', async () => {
    const env = await createDedupTestEnv('fence', 2);
    const topics = topicNames(env.prefix);
    const { messages, expected } = makeStreamWithDuplicates('web', 2_000, 0.1);
    // Each process has its own volume, as pods do (a frozen owner keeps its stores locked).
    const dirs = [env.newDataDir(), env.newDataDir()];
    const half = Math.floor(messages.length / 2);
    let a: DedupProcess | undefined;
    let b: DedupProcess | undefined;
    try {
      // A freezes itself inside a transaction: its chunk is sent to cdp.deduped, not committed.
      a = await startDedup(env, {
        DEDUP_DATA_DIR: dirs[0],
        DEDUP_FAULT_POINT: 'after-send',
        DEDUP_FAULT_SIGNAL: 'SIGSTOP',
        DEDUP_FAULT_PROBABILITY: '1',
      });
      await waitReady(a);
      const feeding = feed(env, topics.ingest, messages.slice(0, half), 50, 30);
      const frozenA = a;
      await until('A to freeze in a transaction', () => isStopped(frozenA), 60_000);
      await feeding;

      // B joins once the group drops A (session timeout), takes both partitions and fences A.
      b = await startDedup(env, { DEDUP_DATA_DIR: dirs[1] });
      await waitReady(b);
      const liveB = b;
      await until(
        'B to own both partitions',
        async () => metricValue(await liveB.metrics(), 'cdp_dedup_owned_partitions') === env.partitions,
        60_000,
      );
      await feed(env, topics.ingest, messages.slice(half), 50, 30);

      // A wakes up where it stopped: its commit must fail, and it must rejoin, not publish.
      a.child.kill('SIGCONT');
      await until(
        'A to count its fenced transaction',
        async () => metricValue(await frozenA.metrics(), 'cdp_dedup_fenced_total') >= 1,
        60_000,
      );

      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 5_000, timeoutMs: 120_000 });
      const fenced = metricValue(await a.metrics(), 'cdp_dedup_fenced_total');
      logger.warn({ fenced, input: messages.length, unique: expected.size, output: out.length }, 'fence test');
      expect(fenced).toBeGreaterThanOrEqual(1);
      expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
      expect(out).toHaveLength(expected.size);
    } finally {
      await env.close();
    }
  });
});
