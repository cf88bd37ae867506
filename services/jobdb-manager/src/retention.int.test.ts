// Retention of delivery stats in cdp_control: the leader deletes rows older than
// DELIVERY_STATS_RETENTION_MS; a standby, and a leader deposed while frozen, delete nothing.
// In process, real MariaDB and the Consul dev server.
import mysql from 'mysql2/promise';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { createConsulClient, type ConsulClient } from '@cdp/consul';
import { appendDeliveryStats, migrateControlDatabase, type DeliveryStatsRow } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { mysqlUrl, waitFor } from '@cdp/testkit';
import * as m from './metrics';
import { createManagerService, type JobDbManagerService, type JobDbManagerSettings } from './service';
import { dropManagedDatabases, testManagerSettings } from './testing/manager-harness';

const logger = createLogger({ name: 'retention-test', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' });
const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

let consulServer: ConsulDevServer;
let consul: ConsulClient;
const running: JobDbManagerService[] = [];
const settingsUsed: JobDbManagerSettings[] = [];

beforeAll(async () => {
  consulServer = await startConsulDevServer({ minTtlMs: 500, ttlMultiplier: 1 });
  consul = createConsulClient(consulServer.url);
});

afterEach(async () => {
  for (const s of running.splice(0)) await s.stop();
  for (const s of settingsUsed.splice(0)) await dropManagedDatabases(s);
});

afterAll(async () => {
  await consul.close();
  await consulServer.close();
});

/** Settings on a fresh prefix and control database: no spare, so no JobDB is provisioned. */
function retentionSettings(): JobDbManagerSettings {
  const settings = testManagerSettings(`ret${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}/`, {
    JOBDB_SPARE: 0,
    DELIVERY_STATS_RETENTION_MS: 7 * DAY_MS,
  });
  settingsUsed.push(settings);
  return settings;
}

function statsRow(minute: Date, n: number): DeliveryStatsRow {
  return {
    minute,
    director: 'director:test',
    sourceId: 'web',
    destinationId: `dest${n % 7}`,
    succeeded: n,
    retried: 0,
    discarded: 0,
    archived: 0,
    latencyBuckets: [n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    failures: [],
    statusCounts: [{ outcome: 'retried', status: 503, count: 1 }],
  };
}

/** Appends `count` rows whose minutes go from `from` to `to` (inclusive, evenly spread). */
async function appendRows(database: string, count: number, from: number, to: number): Promise<void> {
  const pool = mysql.createPool({ uri: mysqlUrl(), database, timezone: 'Z', connectionLimit: 1 });
  try {
    const rows = Array.from({ length: count }, (_, i) => {
      const at = count === 1 ? from : from + Math.floor(((to - from) * i) / (count - 1));
      return statsRow(new Date(Math.floor(at / MINUTE_MS) * MINUTE_MS), i);
    });
    for (let i = 0; i < rows.length; i += 2_000) await appendDeliveryStats(pool, rows.slice(i, i + 2_000));
  } finally {
    await pool.end();
  }
}

async function minutes(database: string, table = 'delivery_stats'): Promise<number[]> {
  const conn = await mysql.createConnection({ uri: mysqlUrl(), database, timezone: 'Z' });
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT minute FROM ${table} ORDER BY id`);
    return rows.map((r) => (r.minute as Date).getTime());
  } finally {
    await conn.end();
  }
}

async function metric(metricObject: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await metricObject.get()).values.reduce((sum, v) => sum + v.value, 0);
}

async function startService(settings: JobDbManagerSettings, pod: string, now?: () => number): Promise<JobDbManagerService> {
  const service = createManagerService({ ...settings, POD_NAME: pod }, { consul, logger, now });
  running.push(service);
  await service.start();
  return service;
}

describe('delivery-stats retention', () => {
  it('the leader deletes the rows older than DELIVERY_STATS_RETENTION_MS in batches; newer ones stay; the gauge shows the oldest kept', async () => {
    const settings = retentionSettings();
    await migrateControlDatabase(mysqlUrl(), settings.CDP_CONTROL_DB);
    let clock = Date.parse('2026-06-20T12:00:00Z');
    const cutoff = clock - 7 * DAY_MS;
    // 12,000 old rows (three DELETE batches), then 600 within the retention, then one old row
    // appended late (a director's flush after a long pause).
    await appendRows(settings.CDP_CONTROL_DB, 12_000, clock - 10 * DAY_MS, cutoff - MINUTE_MS);
    await appendRows(settings.CDP_CONTROL_DB, 600, cutoff + MINUTE_MS, clock);
    await appendRows(settings.CDP_CONTROL_DB, 1, clock - 9 * DAY_MS, clock - 9 * DAY_MS);
    const prunedBefore = await metric(m.statsPruned);

    const service = await startService(settings, 'r1', () => clock);
    await waitFor(() => service.leader.isLeader, 10_000);
    // Elected: a prune starts at once; runOnce joins or follows it.
    await service.retention.runOnce();

    const kept = await minutes(settings.CDP_CONTROL_DB);
    expect(kept).toHaveLength(600);
    expect(kept.every((t) => t >= cutoff)).toBe(true);
    // One status-code row per stats row here: the same minutes stay.
    expect(await minutes(settings.CDP_CONTROL_DB, 'delivery_status_codes')).toEqual(kept);
    expect((await metric(m.statsPruned)) - prunedBefore).toBe(12_001);
    expect(await metric(m.statsOldestAge)).toBe((clock - kept[0]) / 1_000);
    expect(await metric(m.statsPruneErrors)).toBe(0);

    // Three days later, the rows of the first three days of those 600 have aged out too.
    clock += 3 * DAY_MS;
    await service.retention.runOnce();
    const later = await minutes(settings.CDP_CONTROL_DB);
    expect(later.length).toBeGreaterThan(0);
    expect(later.length).toBeLessThan(600);
    expect(later.every((t) => t >= clock - 7 * DAY_MS)).toBe(true);
    expect(kept.filter((t) => t >= clock - 7 * DAY_MS)).toEqual(later);
  });

  it('a standby deletes nothing, nor does a frozen leader after it lost leadership', async () => {
    const settings = retentionSettings();
    await migrateControlDatabase(mysqlUrl(), settings.CDP_CONTROL_DB);
    const now = Date.now();
    const old = () => appendRows(settings.CDP_CONTROL_DB, 50, now - 9 * DAY_MS, now - 8 * DAY_MS);

    const a = await startService(settings, 'ra');
    await waitFor(() => a.leader.isLeader, 10_000);
    await a.retention.runOnce();
    const b = await startService(settings, 'rb');
    await old();
    // b stands by: its prune does nothing.
    await b.retention.runOnce();
    expect(await minutes(settings.CDP_CONTROL_DB)).toHaveLength(50);

    // a freezes (no renewals); b takes over and prunes.
    a.leader.freeze();
    await waitFor(() => b.leader.isLeader, 10_000);
    await b.retention.runOnce();
    expect(await minutes(settings.CDP_CONTROL_DB)).toHaveLength(0);

    // b stops; frozen a still believes it leads, but its confirmation before the DELETE fails.
    await old();
    await b.stop();
    expect(a.leader.isLeader).toBe(true);
    await a.retention.runOnce();
    expect(await minutes(settings.CDP_CONTROL_DB)).toHaveLength(50);
    expect(a.leader.isLeader).toBe(false);
  });
});
