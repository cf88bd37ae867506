// pnpm bench:director — deliveries/s from one director to a local HTTP sink with every
// transition persisted, next to the same run's raw undici request rate and raw MariaDB
// insert rate; the quiet customer's p99 next to a 50x noisy one over alone; the adoption and
// rebuild of a JobDB of 1,000,000 open jobs with the director process's peak RSS. Bounded (a
// few minutes; each phase has a time limit), 127.0.0.1 only; cleans up its databases.
import { fork } from 'node:child_process';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { Agent, request } from 'undici';
import { startConsulDevServer } from '@cdp/consul-dev';
import { ConsulKeys, createConsulClient } from '@cdp/consul';
import { JobDb, dropJobDb, migrateControlDatabase, provisionJobDb, type NewJob } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { cpuSeconds, mysqlUrl, peakRssBytes, percentile, rssBytes, testDatabaseName } from '@cdp/testkit';
import { Director } from '../service';
import {
  FairnessRig,
  FIFTY_TIMES_NOISY,
  fiftyTimesNoisyDestinations,
  quietCustomerReport,
  quietCustomerSamples,
} from '../testing/fairness';
import { MemoryPublisher, TestEnv, testSettings, testWorkspace } from '../testing/harness';
import { fillOpenJobs } from '../testing/open-jobs';

const JOBS = Number(process.env.BENCH_JOBS ?? 40_000);
const RAW_SECONDS = Number(process.env.BENCH_RAW_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);
const REBUILD_JOBS = Number(process.env.BENCH_REBUILD_JOBS ?? 1_000_000);
const FAIRNESS_ROUNDS = Number(process.env.BENCH_FAIRNESS_ROUNDS ?? 5);
const PAYLOAD = JSON.stringify({
  type: 'track',
  event: 'Order Completed',
  userId: 'user-123',
  properties: { orderId: 'o-1', total: 42.5, currency: 'USD', items: [{ sku: 'a', qty: 1 }] },
  context: { library: { name: 'bench', version: '1' } },
});

async function rawHttpRate(url: string): Promise<{ rate: number; p99: number }> {
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 10_000 });
  const end = Date.now() + RAW_SECONDS * 1000;
  let done = 0;
  const lat: number[] = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        const t = performance.now();
        const res = await request(url, {
          method: 'POST',
          body: PAYLOAD,
          headers: { 'content-type': 'application/json' },
          dispatcher: agent,
        });
        await res.body.text();
        lat.push(performance.now() - t);
        done += 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await agent.close();
  return { rate: done / seconds, p99: percentile(lat, 0.99) };
}

async function rawInsertRate(url: string): Promise<number> {
  const db = testDatabaseName('bench_raw');
  const conn = await mysql.createConnection({ uri: url });
  try {
    await conn.query(`CREATE DATABASE \`${db}\``);
    await conn.query(`USE \`${db}\``);
    await conn.query(
      'CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, job_id CHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, state VARCHAR(20), attempt INT, at DATETIME(3), KEY (job_id, id)) ENGINE=InnoDB',
    );
    const end = Date.now() + RAW_SECONDS * 1000;
    let rows = 0;
    const started = performance.now();
    while (Date.now() < end) {
      const batch = Array.from({ length: 1000 }, (_, i) => [`k${String(rows + i).padStart(26, '0')}`, 'succeeded', 1, new Date()]);
      await conn.beginTransaction();
      await conn.query('INSERT INTO t (job_id, state, attempt, at) VALUES ?', [batch]);
      await conn.commit();
      rows += batch.length;
    }
    return rows / ((performance.now() - started) / 1000);
  } finally {
    await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await conn.end();
  }
}

function histogramSum(name: string): { sum: number; count: number } {
  const metric = registry.getSingleMetric(name) as unknown as { hashMap: Record<string, { sum: number; count: number }> } | undefined;
  let sum = 0;
  let count = 0;
  for (const v of Object.values(metric?.hashMap ?? {})) {
    sum += v.sum;
    count += v.count;
  }
  return { sum, count };
}

/**
 * The quiet customer B (20 jobs/s) and a noisy A (1,000 jobs/s, 50x) on a 400/s sink, through a
 * director process (testing/fairness.ts): B's p99 next to A over B alone, and over B at the
 * sink's twin in the same rounds.
 */
async function noisyCustomer(consulUrl: string): Promise<{ alone: number; noisy: number; twin: number; samples: number }> {
  const env = new TestEnv(consulUrl);
  const ok = { status: 200, delayMs: 5 };
  const rig = await FairnessRig.start({ '/limited': ok, '/twin': ok });
  try {
    await env.provision('fair');
    const director = await env.directorProcess(
      testSettings(env.prefix, { DIRECTOR_SESSION_TTL_MS: 10_000 }),
      fiftyTimesNoisyDestinations(rig.sinkUrl),
      ['a', 'b'],
    );
    rig.target(director.url);
    const warmup = [
      { sourceId: 'b', destinationId: 'limited', perSecond: 100 },
      { sourceId: 'b', destinationId: 'twin', perSecond: 100 },
    ];
    await rig.offer(warmup, 2, 'warmup');
    await rig.delivered('/twin', 'warmup', 200);
    const report = quietCustomerReport(await quietCustomerSamples(rig, { ...FIFTY_TIMES_NOISY, rounds: FAIRNESS_ROUNDS }, 'bench'));
    console.log(`noisy customer (B 20/s, A 1,000/s on a 400/s sink, ${FAIRNESS_ROUNDS} rounds of 5 s a side): ${report.text}`);
    const { alone, noisy, twin } = report;
    return { alone: alone.p99, noisy: noisy.p99, twin: twin.p99, samples: noisy.n };
  } finally {
    await env.cleanup();
    rig.stop();
  }
}

/**
 * An orphaned JobDB of REBUILD_JOBS open jobs (filled by MariaDB itself) adopted by a director
 * process with the default DIRECTOR_MAX_QUEUED_BYTES; its destination is paused, so what is
 * measured is the count, the take and the paged rebuild, and the process's peak RSS.
 */
async function millionRebuild(
  consulUrl: string,
): Promise<{ fillSeconds: number; takeSeconds: number; rebuildSeconds: number; peakRssMb: number; rssMb: number }> {
  const env = new TestEnv(consulUrl);
  try {
    await env.consul.kv.set(env.keys.destinationControl('held'), JSON.stringify({ paused: true }));
    let fillSeconds = 0;
    const big = await env.provision('million', 'draining', async (database) => {
      ({ seconds: fillSeconds } = await fillOpenJobs(mysqlUrl(), database, {
        count: REBUILD_JOBS,
        padBytes: 160,
        destinationId: 'held',
        sources: 10,
        expiresInMs: 4 * 3_600_000,
        tag: 'r',
      }));
    });
    console.log(
      `filled a JobDB with ${REBUILD_JOBS} open jobs (~250-byte payloads) in ${fillSeconds.toFixed(1)} s (INSERT … SELECT from seq_1_to_N, 100,000 rows a statement)`,
    );
    await env.provision('millionact');
    const t0 = performance.now();
    const director = await env.directorProcess(
      testSettings(env.prefix, { DIRECTOR_SESSION_TTL_MS: 10_000 }),
      [{ id: 'held', url: 'http://127.0.0.1:9/held' }],
      Array.from({ length: 10 }, (_, i) => `src${i}`),
    );
    let takenAt = 0;
    for (;;) {
      const held = (await director.held()).find((h) => h.id === big.id);
      if (held && takenAt === 0) takenAt = performance.now();
      if (held && !held.rebuilding) {
        if (held.openJobs !== REBUILD_JOBS) throw new Error(`rebuilt ${held.openJobs} of ${REBUILD_JOBS} open jobs`);
        break;
      }
      if (performance.now() - t0 > 600_000) throw new Error('the rebuild did not finish within 10 minutes');
      await new Promise((r) => setTimeout(r, 250));
    }
    const rebuiltAt = performance.now();
    const result = {
      fillSeconds,
      takeSeconds: (takenAt - t0) / 1000,
      rebuildSeconds: (rebuiltAt - takenAt) / 1000,
      peakRssMb: peakRssBytes(director.pid) / 1048576,
      rssMb: rssBytes(director.pid) / 1048576,
    };
    console.log(
      `adoption of ${REBUILD_JOBS} open jobs: director start to JobDB taken (its open jobs counted first) ${result.takeSeconds.toFixed(1)} s; ` +
        `paged rebuild ${result.rebuildSeconds.toFixed(1)} s; director process peak RSS ${result.peakRssMb.toFixed(0)} MB (${result.rssMb.toFixed(0)} MB after), ` +
        `DIRECTOR_MAX_QUEUED_BYTES ${testSettings('x/').DIRECTOR_MAX_QUEUED_BYTES / 1048576} MiB`,
    );
    return result;
  } finally {
    await env.cleanup();
  }
}

async function main(): Promise<void> {
  const url = mysqlUrl();
  const sink = fork(path.join(__dirname, 'sink-process.js'), [], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => sink.once('message', (m: { port: number }) => resolve(m.port)));
  const sinkUrl = `http://127.0.0.1:${port}/hook`;
  const consulServer = await startConsulDevServer({ minTtlMs: 1_000, ttlMultiplier: 1 });
  const consul = createConsulClient(consulServer.url);
  const prefix = `bench${Date.now().toString(36)}/`;
  const keys = new ConsulKeys(prefix);
  const jobDbId = `bench${Date.now().toString(36)}`;
  const database = testDatabaseName('bench_jobdb');
  const settings = testSettings(prefix, {
    POD_NAME: 'bench',
    DIRECTOR_MAX_IN_FLIGHT: CONCURRENCY,
    DIRECTOR_CONNECTIONS_PER_ORIGIN: CONCURRENCY,
    DIRECTOR_SESSION_TTL_MS: 10_000,
    DIRECTOR_JOBDB_POOL_SIZE: 6,
  });
  let director: Director | undefined;
  try {
    console.log(`director bench: ${JOBS} jobs, concurrency ${CONCURRENCY}, sink ${sinkUrl}`);
    const http = await rawHttpRate(sinkUrl);
    console.log(`baseline raw undici POST rate: ${Math.round(http.rate)} req/s (p99 ${http.p99.toFixed(1)} ms)`);
    const insertRate = await rawInsertRate(url);
    console.log(`baseline raw MariaDB insert: ${Math.round(insertRate)} rows/s (1,000-row multi-row INSERTs, one txn each)`);

    await provisionJobDb({ url, consul, keys, id: jobDbId, database });
    // What jobdb-manager does before any director starts.
    await migrateControlDatabase(url, settings.CDP_CONTROL_DB);
    // Preload the jobs under a throwaway lease, as a previous holder would have left them.
    const db = new JobDb({ url, database });
    const lease = await db.takeLease({ fencingToken: 0, lockIndex: 0, holder: 'preload', sessionId: 'preload' });
    const now = Date.now();
    for (let i = 0; i < JOBS; i += 5_000) {
      const batch: NewJob[] = Array.from({ length: Math.min(5_000, JOBS - i) }, (_, k) => ({
        sourceId: `src${(i + k) % 10}`,
        messageId: `m${i + k}`,
        destinationId: 'hook',
        subscriptionId: 'default',
        payload: PAYLOAD,
        headers: {},
        receivedAt: new Date(now),
        expiresAt: new Date(now + 3_600_000),
      }));
      await db.insertJobs(lease, batch);
    }
    await db.close();

    const ws = testWorkspace([{ id: 'hook', url: sinkUrl, maxConcurrency: CONCURRENCY, timeoutMs: 10_000 }], ['src0']);
    director = new Director(settings, {
      consul,
      publisher: new MemoryPublisher(),
      workspace: () => ws,
      logger: createLogger({ name: 'director-bench', level: 'warn' }),
      host: '127.0.0.1',
    });
    const cpu0 = cpuSeconds(process.pid);
    const t0 = performance.now();
    await director.start();
    // Taken: its lock and lease; rebuilt: every open job loaded (in the background, pages of
    // 5,000, delivering meanwhile). Deliveries/s count from the taking.
    let takenAt = 0;
    let rebuiltAt = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      const held = director.holder.heldJobDbs().find((h) => h.id === jobDbId);
      if (held && takenAt === 0) takenAt = performance.now();
      if (held && !held.rebuilding && rebuiltAt === 0) rebuiltAt = performance.now();
      if (rebuiltAt > 0 && director.engine.openJobs(jobDbId) === 0) break;
      if (performance.now() - t0 > 180_000) throw new Error('bench did not finish within 3 minutes');
    }
    const t1 = performance.now();
    const cpu = cpuSeconds(process.pid) - cpu0;
    const deliverSeconds = (t1 - takenAt) / 1000;
    const rate = JOBS / deliverSeconds;
    const check = await mysql.createConnection({ uri: url, database });
    const [[row]] = await check.query<mysql.RowDataPacket[]>(
      "SELECT SUM(to_state = 'succeeded') AS ok, COUNT(*) AS n FROM job_state_transitions",
    );
    await check.end();
    const attempts = histogramSum('cdp_director_attempt_duration_seconds');
    const writes = histogramSum('cdp_director_jobdb_transition_write_duration_seconds');
    const batches = histogramSum('cdp_director_jobdb_transition_batch_rows');
    console.log(
      `rebuild of ${JOBS} open jobs after taking the lock: ${((rebuiltAt - takenAt) / 1000).toFixed(2)} s (start to taken ${((takenAt - t0) / 1000).toFixed(2)} s)`,
    );
    console.log(
      `director: ${JOBS} deliveries in ${deliverSeconds.toFixed(2)} s = ${Math.round(rate)} deliveries/s; ${row.n} transitions persisted (${row.ok} succeeded)`,
    );
    console.log(`  ratio to raw HTTP rate: ${(rate / http.rate).toFixed(2)}`);
    console.log(
      `  where the time goes: director process CPU ${((cpu / ((t1 - t0) / 1000)) * 100).toFixed(0)} % of one core; ` +
        `mean attempt ${((attempts.sum / Math.max(1, attempts.count)) * 1000).toFixed(1)} ms; ` +
        `${writes.count} transition txns, mean ${((writes.sum / Math.max(1, writes.count)) * 1000).toFixed(1)} ms, ` +
        `mean ${(batches.sum / Math.max(1, batches.count)).toFixed(0)} rows each`,
    );
    await director.stop();
    director = undefined;
    const fairness = await noisyCustomer(consulServer.url);
    const rebuild = await millionRebuild(consulServer.url);
    console.log(
      JSON.stringify({
        bench: 'director',
        value: Math.round(rate),
        unit: 'deliveries/s',
        baseline: Math.round(http.rate),
        ratio: Number((rate / http.rate).toFixed(2)),
        baseline_p99_ms: Number(http.p99.toFixed(1)),
        mysql_insert_rows_per_s: Math.round(insertRate),
        quiet_customer_p99_ms: { alone: fairness.alone, next_to_50x: fairness.noisy, twin_same_rounds: fairness.twin },
        quiet_customer_p99_ratio: Number((fairness.noisy / fairness.alone).toFixed(2)),
        quiet_customer_p99_ratio_to_twin: Number((fairness.noisy / fairness.twin).toFixed(2)),
        rebuild_jobs: REBUILD_JOBS,
        rebuild_fill_s: Number(rebuild.fillSeconds.toFixed(1)),
        rebuild_take_s: Number(rebuild.takeSeconds.toFixed(1)),
        rebuild_s: Number(rebuild.rebuildSeconds.toFixed(1)),
        rebuild_peak_rss_mb: Math.round(rebuild.peakRssMb),
      }),
    );
  } finally {
    await director?.stop().catch(() => undefined);
    await dropJobDb({ url, consul, keys, id: jobDbId, database }).catch(() => undefined);
    const conn = await mysql.createConnection({ uri: url });
    await conn.query(`DROP DATABASE IF EXISTS \`${settings.CDP_CONTROL_DB}\``);
    await conn.end();
    await consul.close();
    await consulServer.close();
    sink.send('stop');
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
