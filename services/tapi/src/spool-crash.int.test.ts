// The spool as a volume outliving its process: tapi killed (SIGKILL) while Kafka is unreachable
// and many clients are sending, then the same directory reopened by a new tapi process, or by
// the `spool drain` command a Job runs on a volume left by a scale-in.
import path from 'node:path';
import { regulationKey } from '@cdp/events';
import { canConnect, freePort, metricValue, sleep, startServiceProcess, type ServiceProcess } from '@cdp/testkit';
import { Spool } from './spool';
import {
  basicAuth,
  createTapiTestEnv,
  EnvelopeCollector,
  runTapiCli,
  startLoad,
  WRITE_KEY,
  type CliResult,
  type TapiTestEnv,
} from './testing/harness';

describe('spool on a volume that outlives the process', () => {
  let env: TapiTestEnv;
  let collector: EnvelopeCollector;
  const procs: ServiceProcess[] = [];

  beforeAll(async () => {
    env = await createTapiTestEnv('spool-crash');
    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
  });
  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await collector?.stop();
    await env?.close();
  });

  /** A tapi process on `spoolDir`; `brokers` unset means an address where no Kafka listens. */
  async function startTapi(spoolDir: string, brokers?: string): Promise<{ proc: ServiceProcess; url: string }> {
    const port = await freePort();
    const { OPS_PORT: _, ...baseEnv } = env.baseEnv; // startServiceProcess picks the ops port
    const proc = await startServiceProcess('tapi', {
      ...baseEnv,
      // kafkajs logs each refused connection as an error.
      LOG_LEVEL: process.env.TAPI_TEST_LOG_LEVEL ?? 'fatal',
      PORT: String(port),
      KAFKA_BROKERS: brokers ?? `127.0.0.1:${await freePort()}`,
      SPOOL_DIR: spoolDir,
      PUBLISH_TIMEOUT_MS: '500',
    });
    procs.push(proc);
    for (let i = 0; !(await canConnect(port)); i++) {
      if (proc.child.exitCode !== null || i > 300) throw new Error('tapi did not start listening');
      await sleep(100);
    }
    return { proc, url: `http://127.0.0.1:${port}` };
  }

  const runCli = (args: string[], brokers: string) =>
    runTapiCli(args, { KAFKA_BROKERS: brokers, CDP_TOPIC_PREFIX: env.prefix, PUBLISH_TIMEOUT_MS: '500', LOG_LEVEL: 'warn' });

  async function spoolDepth(dir: string): Promise<number> {
    const spool = await Spool.open({ dir, maxBytes: 1e9, minFreeBytes: 1, logger: env.logger });
    const depth = spool.depth;
    await spool.close();
    return depth;
  }

  it('SIGKILL under concurrent load with Kafka unreachable, restart on the same directory: every id answered 200 reaches cdp.ingest', async () => {
    const spoolDir = path.join(env.dir, 'spool-kill');
    const first = await startTapi(spoolDir);
    // 32 clients at once, each sending 5-event batches back to back.
    const loads = Array.from({ length: 32 }, (_, c) =>
      startLoad(() => first.url, { label: `kill-${c}`, batchSize: 5, intervalMs: 0, maxRequests: 60, maxMs: 60_000 }),
    );
    const acked = () => loads.reduce((n, l) => n + l.result.acked.length, 0);
    for (let i = 0; acked() < 2_000 && i < 600; i++) await sleep(50);
    await first.proc.stop('SIGKILL');
    const results = await Promise.all(loads.map((l) => l.stop()));
    const ids = results.flatMap((r) => r.acked);
    expect(ids.length).toBeGreaterThanOrEqual(2_000);
    // Every acknowledged event was spooled (no Kafka): the directory holds at least them.
    expect(await spoolDepth(spoolDir)).toBeGreaterThanOrEqual(ids.length);

    const second = await startTapi(spoolDir, env.brokers);
    const found = await collector.waitForIds(ids, 60_000);
    expect(ids.filter((id) => !collector.byId.has(id))).toEqual([]);
    expect(found).toHaveLength(ids.length);
    expect(metricValue(await second.proc.metrics(), 'cdp_tapi_spool_drained_total')).toBeGreaterThanOrEqual(ids.length);
    expect(await second.proc.stop()).toBe(0);
    expect(await spoolDepth(spoolDir)).toBe(0);
  });

  it("`spool drain --dir` republishes a dead process's spool, drops suppressed users, exits 1 while Kafka is unreachable and 0 once drained", async () => {
    const spoolDir = path.join(env.dir, 'spool-drain');
    const tapi = await startTapi(spoolDir);
    const batch = (ids: string[], userId: string) =>
      fetch(`${tapi.url}/v1/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: basicAuth(WRITE_KEY) },
        body: JSON.stringify({ batch: ids.map((messageId) => ({ type: 'track', messageId, userId, event: 'Drain' })) }),
      });
    const kept = Array.from({ length: 20 }, (_, i) => `drain-keep-${i}`);
    const erased = Array.from({ length: 5 }, (_, i) => `drain-erased-${i}`);
    expect((await batch(kept, 'drain-user')).status).toBe(200);
    expect((await batch(erased, 'drain-erased-user')).status).toBe(200);
    await tapi.proc.stop('SIGKILL');
    // Suppressed after the events were spooled: the drain must check again.
    await env.producer.send(env.topics.regulations, [
      {
        key: regulationKey('main', 'drain-erased-user'),
        value: JSON.stringify({
          regulationId: 'r-drain',
          type: 'SUPPRESS_ONLY',
          userId: 'drain-erased-user',
          spaceId: 'main',
          requestedAt: new Date().toISOString(),
        }),
      },
    ]);

    // The command's log is shown only when the exit code is not the expected one.
    const outcome = (r: CliResult, expected: number) => ({
      code: r.code,
      result: JSON.parse(r.stdout || '{}') as unknown,
      log: r.code === expected ? '' : r.stderr.slice(-3_000),
    });
    const unreachable = await runCli(['spool', 'drain', '--dir', spoolDir, '--timeout-ms', '1000'], `127.0.0.1:${await freePort()}`);
    expect(outcome(unreachable, 1)).toEqual({ code: 1, result: { dir: spoolDir, drained: 0, left: 25 }, log: '' });

    const drained = await runCli(['spool', 'drain', '--dir', spoolDir], env.brokers);
    expect(outcome(drained, 0)).toEqual({ code: 0, result: { dir: spoolDir, drained: 25, left: 0 }, log: '' });
    expect(await collector.waitForIds(kept)).toHaveLength(kept.length);
    await collector.catchUp();
    expect(erased.filter((id) => collector.byId.has(id))).toEqual([]);
    expect(await spoolDepth(spoolDir)).toBe(0);

    // A volume where tapi never spooled: nothing to do.
    const empty = await runCli(['spool', 'drain', '--dir', path.join(env.dir, 'never-used')], env.brokers);
    expect([empty.code, empty.stdout.trim()]).toEqual([0, JSON.stringify({ dir: path.join(env.dir, 'never-used'), drained: 0, left: 0 })]);
  });
});
