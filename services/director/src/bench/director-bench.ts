// pnpm bench:director — deliveries/s from one director to a local HTTP sink with every
// transition persisted, next to the same run's raw undici request rate and raw MariaDB
// insert rate, through a webhook and then through an action destination (Segment's
// Webhook (actions)); the quiet customer's p99 next to a 50x noisy one over alone; the adoption and
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
import { actionDestinationIssues } from '@cdp/actions';
import { parseWorkspace } from '@cdp/workspace';
import { Director } from '../service';
import {
  FairnessRig,
  FIFTY_TIMES_NOISY,
  fiftyTimesNoisyDestinations,
  quietCustomerReport,
  quietCustomerSamples,
} from '../testing/fairness';
import { MemoryPublisher, TestEnv, testSettings } from '../testing/harness';
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
    const director = await env.directorProcess(testSettings(env.prefix), fiftyTimesNoisyDestinations(rig.sinkUrl), ['a', 'b']);
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
      testSettings(env.prefix),
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

interface DeliveryRun {
  rate: number;
  deliverSeconds: number;
  takeSeconds: number;
  rebuildSeconds: number;
  cpuPercent: number;
  transitions: number;
  succeeded: number;
  meanAttemptMs: number;
  writeTxns: number;
  meanWriteMs: number;
  meanRowsPerTxn: number;
}

/**
 * JOBS jobs preloaded in a fresh JobDB under a throwaway lease (as a previous holder would have
 * left them), then a director in this process takes it and delivers them with every transition
 * persisted, through `destination` (id `hook`, jobs of `subscriptionId`).
 */
async function deliveryRun(
  consulUrl: string,
  label: string,
  destination: object,
  subscriptionId: string,
  sinkUrl: string,
): Promise<DeliveryRun> {
  const url = mysqlUrl();
  const consul = createConsulClient(consulUrl);
  const prefix = `bench${label}${Date.now().toString(36)}/`;
  const keys = new ConsulKeys(prefix);
  const jobDbId = `bench${label}${Date.now().toString(36)}`;
  const database = testDatabaseName(`bench_${label}`);
  const settings = testSettings(prefix, {
    POD_NAME: `bench-${label}`,
    DIRECTOR_MAX_IN_FLIGHT: CONCURRENCY,
    DIRECTOR_CONNECTIONS_PER_ORIGIN: CONCURRENCY,
    DIRECTOR_JOBDB_POOL_SIZE: 6,
  });
  let director: Director | undefined;
  try {
    await provisionJobDb({ url, consul, keys, id: jobDbId, database });
    // What jobdb-manager does before any director starts.
    await migrateControlDatabase(url, settings.CDP_CONTROL_DB);
    const db = new JobDb({ url, database });
    const lease = await db.takeLease({ fencingToken: 0, lockIndex: 0, holder: 'preload', sessionId: 'preload' });
    const now = Date.now();
    for (let i = 0; i < JOBS; i += 5_000) {
      const batch: NewJob[] = Array.from({ length: Math.min(5_000, JOBS - i) }, (_, k) => ({
        sourceId: `src${(i + k) % 10}`,
        messageId: `m${i + k}`,
        destinationId: 'hook',
        subscriptionId,
        payload: PAYLOAD,
        headers: {},
        receivedAt: new Date(now),
        expiresAt: new Date(now + 3_600_000),
      }));
      await db.insertJobs(lease, batch);
    }
    await db.close();

    const ws = parseWorkspace(
      JSON.stringify({
        spaces: [{ id: 'main', name: 'Main' }],
        sources: [{ id: 'src0', name: 'src0', spaceId: 'main', writeKeys: ['wk_src0'] }],
        destinations: [{ id: 'hook', name: 'hook', ...destination, limits: { maxConcurrency: CONCURRENCY } }],
        connections: [{ sourceId: 'src0', destinationId: 'hook' }],
      }),
      { format: 'json', file: 'bench.json', check: actionDestinationIssues },
    );
    director = new Director(settings, {
      consul,
      publisher: new MemoryPublisher(),
      workspace: () => ws,
      logger: createLogger({ name: 'director-bench', level: 'warn' }),
      host: '127.0.0.1',
    });
    const attempts0 = histogramSum('cdp_director_attempt_duration_seconds');
    const writes0 = histogramSum('cdp_director_jobdb_transition_write_duration_seconds');
    const batches0 = histogramSum('cdp_director_jobdb_transition_batch_rows');
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
      if (performance.now() - t0 > 300_000) throw new Error(`${label}: bench did not finish within 5 minutes`);
    }
    const t1 = performance.now();
    const cpu = cpuSeconds(process.pid) - cpu0;
    const deliverSeconds = (t1 - takenAt) / 1000;
    const check = await mysql.createConnection({ uri: url, database });
    const [[row]] = await check.query<mysql.RowDataPacket[]>(
      "SELECT SUM(to_state = 'succeeded') AS ok, COUNT(*) AS n FROM job_state_transitions",
    );
    await check.end();
    const delta = (now: { sum: number; count: number }, before: { sum: number; count: number }) => ({
      sum: now.sum - before.sum,
      count: now.count - before.count,
    });
    const attempts = delta(histogramSum('cdp_director_attempt_duration_seconds'), attempts0);
    const writes = delta(histogramSum('cdp_director_jobdb_transition_write_duration_seconds'), writes0);
    const batches = delta(histogramSum('cdp_director_jobdb_transition_batch_rows'), batches0);
    const run: DeliveryRun = {
      rate: JOBS / deliverSeconds,
      deliverSeconds,
      takeSeconds: (takenAt - t0) / 1000,
      rebuildSeconds: (rebuiltAt - takenAt) / 1000,
      cpuPercent: (cpu / ((t1 - t0) / 1000)) * 100,
      transitions: Number(row.n),
      succeeded: Number(row.ok),
      meanAttemptMs: (attempts.sum / Math.max(1, attempts.count)) * 1000,
      writeTxns: writes.count,
      meanWriteMs: (writes.sum / Math.max(1, writes.count)) * 1000,
      meanRowsPerTxn: batches.sum / Math.max(1, batches.count),
    };
    if (run.succeeded !== JOBS) throw new Error(`${label}: ${run.succeeded} of ${JOBS} jobs succeeded (sink ${sinkUrl})`);
    await director.stop();
    director = undefined;
    return run;
  } finally {
    await director?.stop().catch(() => undefined);
    await dropJobDb({ url, consul, keys, id: jobDbId, database }).catch(() => undefined);
    const conn = await mysql.createConnection({ uri: url });
    await conn.query(`DROP DATABASE IF EXISTS \`${settings.CDP_CONTROL_DB}\``);
    await conn.end();
    await consul.close();
  }
}

function report(label: string, run: DeliveryRun, rawRate: number): void {
  console.log(
    `${label}: rebuild of ${JOBS} open jobs after taking the lock ${run.rebuildSeconds.toFixed(2)} s (start to taken ${run.takeSeconds.toFixed(2)} s); ` +
      `${JOBS} deliveries in ${run.deliverSeconds.toFixed(2)} s = ${Math.round(run.rate)} deliveries/s; ${run.transitions} transitions persisted (${run.succeeded} succeeded)`,
  );
  console.log(`  ratio to raw HTTP rate: ${(run.rate / rawRate).toFixed(2)}`);
  console.log(
    `  where the time goes: bench process CPU ${run.cpuPercent.toFixed(0)} % of one core; mean attempt ${run.meanAttemptMs.toFixed(1)} ms; ` +
      `${run.writeTxns} transition txns, mean ${run.meanWriteMs.toFixed(1)} ms, mean ${run.meanRowsPerTxn.toFixed(0)} rows each`,
  );
}

async function main(): Promise<void> {
  const url = mysqlUrl();
  const sink = fork(path.join(__dirname, 'sink-process.js'), [], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => sink.once('message', (m: { port: number }) => resolve(m.port)));
  const sinkUrl = `http://127.0.0.1:${port}/hook`;
  const consulServer = await startConsulDevServer({ minTtlMs: 1_000, ttlMultiplier: 1 });
  try {
    console.log(`director bench: ${JOBS} jobs, concurrency ${CONCURRENCY}, sink ${sinkUrl}`);
    const http = await rawHttpRate(sinkUrl);
    console.log(`baseline raw undici POST rate: ${Math.round(http.rate)} req/s (p99 ${http.p99.toFixed(1)} ms)`);
    const insertRate = await rawInsertRate(url);
    console.log(`baseline raw MariaDB insert: ${Math.round(insertRate)} rows/s (1,000-row multi-row INSERTs, one txn each)`);

    const webhook = await deliveryRun(
      consulServer.url,
      'webhook',
      { type: 'webhook', settings: { url: sinkUrl, timeoutMs: 10_000 } },
      'default',
      sinkUrl,
    );
    report('webhook', webhook, http.rate);
    // The same jobs through Segment's Webhook (actions) definition: the event mapped (`data`:
    // the whole event), validated and sent by the library's request client, one call per job.
    const action = await deliveryRun(
      consulServer.url,
      'action',
      {
        type: 'actions-webhook',
        settings: {},
        subscriptions: [{ id: 'send', name: 'send', action: 'send', subscribe: 'all', mapping: { url: sinkUrl, data: { '@path': '$.' } } }],
      },
      'send',
      sinkUrl,
    );
    report('action destination (actions-webhook send)', action, http.rate);
    console.log(`  action / webhook, same run: ${(action.rate / webhook.rate).toFixed(2)}`);
    const fairness = await noisyCustomer(consulServer.url);
    const rebuild = await millionRebuild(consulServer.url);
    console.log(
      JSON.stringify({
        bench: 'director',
        value: Math.round(webhook.rate),
        unit: 'deliveries/s',
        baseline: Math.round(http.rate),
        ratio: Number((webhook.rate / http.rate).toFixed(2)),
        baseline_p99_ms: Number(http.p99.toFixed(1)),
        mysql_insert_rows_per_s: Math.round(insertRate),
        action_destination_deliveries_per_s: Math.round(action.rate),
        action_destination_ratio_to_webhook: Number((action.rate / webhook.rate).toFixed(2)),
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
    await consulServer.close();
    sink.send('stop');
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
