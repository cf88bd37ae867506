// pnpm bench:director — deliveries/s from one director to a local HTTP sink with every
// transition persisted, next to the same run's raw undici request rate and raw MariaDB
// insert rate. Bounded (about a minute), 127.0.0.1 only; cleans up its databases.
import { fork } from 'node:child_process';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { Agent, request } from 'undici';
import { startConsulDevServer } from '@cdp/consul-dev';
import { ConsulKeys, createConsulClient } from '@cdp/consul';
import { JobDb, dropJobDb, migrateControlDatabase, provisionJobDb, type NewJob } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { cpuSeconds, mysqlUrl, percentile, testDatabaseName } from '@cdp/testkit';
import { Director } from '../service';
import { MemoryPublisher, testSettings, testWorkspace } from '../testing/harness';

const JOBS = Number(process.env.BENCH_JOBS ?? 40_000);
const RAW_SECONDS = Number(process.env.BENCH_RAW_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 256);
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
        const res = await request(url, { method: 'POST', body: PAYLOAD, headers: { 'content-type': 'application/json' }, dispatcher: agent });
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
    let rebuiltAt = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      const held = director.holder.heldJobDbs();
      if (held.length > 0 && rebuiltAt === 0) rebuiltAt = performance.now();
      if (held.length > 0 && director.engine.openJobs(jobDbId) === 0) break;
      if (performance.now() - t0 > 180_000) throw new Error('bench did not finish within 3 minutes');
    }
    const t1 = performance.now();
    const cpu = cpuSeconds(process.pid) - cpu0;
    const deliverSeconds = (t1 - rebuiltAt) / 1000;
    const rate = JOBS / deliverSeconds;
    const check = await mysql.createConnection({ uri: url, database });
    const [[row]] = await check.query<mysql.RowDataPacket[]>(
      "SELECT SUM(to_state = 'succeeded') AS ok, COUNT(*) AS n FROM job_state_transitions",
    );
    await check.end();
    const attempts = histogramSum('cdp_director_attempt_duration_seconds');
    const writes = histogramSum('cdp_director_jobdb_transition_write_duration_seconds');
    const batches = histogramSum('cdp_director_jobdb_transition_batch_rows');
    console.log(`rebuild of ${JOBS} open jobs after taking the lock: ${((rebuiltAt - t0) / 1000).toFixed(2)} s`);
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
    console.log(
      JSON.stringify({
        bench: 'director',
        value: Math.round(rate),
        unit: 'deliveries/s',
        baseline: Math.round(http.rate),
        ratio: Number((rate / http.rate).toFixed(2)),
        baseline_p99_ms: Number(http.p99.toFixed(1)),
        mysql_insert_rows_per_s: Math.round(insertRate),
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
