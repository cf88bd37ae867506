// jobdb-manager under test: settings on a private Consul prefix and database-name prefix, and
// the clean-up of every database it provisioned.
import { dropJobDbDatabase, listDatabases } from '@cdp/jobdb';
import {
  metricValue,
  mysqlUrl,
  sleep,
  startServiceProcess,
  testDatabaseName,
  waitServiceReady,
  type HttpSink,
  type ServiceProcess,
  type SinkRequest,
  waitFor,
} from '@cdp/testkit';
import { testSettings, useDirectorSuite, type DirectorSuite } from '@cdp/director/src/testing/harness';
import { runRotationLoad, type RotationLoadResult } from '@cdp/director/src/testing/rotation-load';
import type { DirectorSettings } from '@cdp/director/src/service';
import type { JobDbManagerSettings } from '../service';

export function testManagerSettings(prefix: string, overrides: Partial<JobDbManagerSettings> = {}): JobDbManagerSettings {
  return {
    MYSQL_URL: mysqlUrl(),
    CDP_CONTROL_DB: testDatabaseName('mctl'),
    CDP_CONSUL_PREFIX: prefix,
    POD_NAME: `mgr-${Math.random().toString(36).slice(2, 8)}`,
    JOBDB_MANAGER_SESSION_TTL_MS: 1_000,
    JOBDB_MANAGER_LOCK_DELAY_MS: 500,
    JOBDB_MANAGER_INTERVAL_MS: 200,
    JOBDB_SPARE: 1,
    JOBDB_ROTATION_PERIOD_MS: 3_600_000,
    JOBDB_MAX_JOBS: 0,
    JOBDB_MAX_BYTES: 0,
    JOBDB_RETRY_WINDOW_MS: 3_600_000,
    JOBDB_ORPHAN_ALERT_MS: 60_000,
    JOBDB_DATABASE_PREFIX: `${testDatabaseName('jm')}_`,
    JOBDB_STATS_INTERVAL_MS: 1_000,
    DELIVERY_STATS_RETENTION_MS: 7 * 24 * 3_600_000,
    DELIVERY_STATS_PRUNE_INTERVAL_MS: 600_000,
    ...overrides,
  };
}

/** The admin token of test managers. */
export const TEST_ADMIN_TOKEN = 'jobdb-manager-test-admin-token';

/** As env vars for a jobdb-manager process (admin API on a free port unless `ADMIN_PORT` is given). */
export function managerProcessEnv(settings: JobDbManagerSettings, consulUrl: string, adminPort = 0): Record<string, string> {
  return {
    CONSUL_HTTP_ADDR: consulUrl,
    ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    ADMIN_PORT: String(adminPort),
    ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, String(v)])),
  };
}

/** Databases on the server named with the manager's prefix (its JobDBs, live or not yet dropped). */
export function managedDatabases(settings: Pick<JobDbManagerSettings, 'JOBDB_DATABASE_PREFIX'>): Promise<string[]> {
  return listDatabases(mysqlUrl(), settings.JOBDB_DATABASE_PREFIX);
}

/** Drops every database the manager provisioned, and its control database (on its server). */
export async function dropManagedDatabases(
  settings: Pick<JobDbManagerSettings, 'JOBDB_DATABASE_PREFIX' | 'CDP_CONTROL_DB' | 'MYSQL_URL'>,
): Promise<void> {
  for (const database of await listDatabases(settings.MYSQL_URL, settings.JOBDB_DATABASE_PREFIX)) {
    await dropJobDbDatabase(settings.MYSQL_URL, database);
  }
  await dropJobDbDatabase(settings.MYSQL_URL, settings.CDP_CONTROL_DB);
}

/** jobdb-manager as a real process (dist/main.js; build first), logging at info into `output()`; ready when it returns. */
export async function startManagerProcess(settings: JobDbManagerSettings, pod: string, consulUrl: string): Promise<ServiceProcess> {
  const p = await startServiceProcess(
    'jobdb-manager',
    { ...managerProcessEnv({ ...settings, POD_NAME: pod }, consulUrl), LOG_LEVEL: 'info' },
    { captureOutput: true },
  );
  try {
    await waitServiceReady(p, 30_000);
  } catch (error) {
    await p.stop('SIGKILL');
    throw error;
  }
  return p;
}

/** Whether a manager process says it leads (cdp_jobdb_manager_leader). */
export async function leads(p: ServiceProcess): Promise<boolean> {
  return metricValue(await p.metrics(), 'cdp_jobdb_manager_leader') === 1;
}

/**
 * Samples the manager's databases every 200 ms until `stop()`: every database seen, and the most
 * that existed at once.
 */
export function sampleManagedDatabases(settings: Pick<JobDbManagerSettings, 'JOBDB_DATABASE_PREFIX'>): {
  stop(): Promise<{ seen: Set<string>; most: number }>;
} {
  const seen = new Set<string>();
  let most = 0;
  let sampling = true;
  const loop = (async () => {
    while (sampling) {
      const dbs = await managedDatabases(settings);
      for (const db of dbs) seen.add(db);
      most = Math.max(most, dbs.length);
      await sleep(200);
    }
  })();
  return {
    async stop() {
      sampling = false;
      await loop;
      return { seen, most };
    },
  };
}

/**
 * The sink's deliveries by message id: requests to `path` or below it (`path/…`) that were
 * answered (not abandoned by the caller), each body a webhook payload with its messageId.
 */
export function deliveriesByMessage(sink: HttpSink, path: string): Map<string, SinkRequest[]> {
  const out = new Map<string, SinkRequest[]>();
  for (const r of sink.requests) {
    if ((r.path !== path && !r.path.startsWith(`${path}/`)) || r.closedUnanswered) continue;
    const id = String((JSON.parse(r.body) as { messageId: string }).messageId);
    out.set(id, [...(out.get(id) ?? []), r]);
  }
  return out;
}

/**
 * Settings of a director process working with the manager under test (its Consul prefix and
 * control database; the director harness's 10 s session).
 */
export function managedDirectorSettings(
  prefix: string,
  manager: Pick<JobDbManagerSettings, 'CDP_CONTROL_DB' | 'JOBDB_RETRY_WINDOW_MS'>,
  pod: string,
): DirectorSettings {
  return testSettings(prefix, {
    POD_NAME: pod,
    CDP_CONTROL_DB: manager.CDP_CONTROL_DB,
    DIRECTOR_RETRY_WINDOW_MS: manager.JOBDB_RETRY_WINDOW_MS,
    DIRECTOR_LOCK_DELAY_MS: 1_000,
  });
}

export interface ManagerLoadSuite extends DirectorSuite {
  /** Seconds of load: the env variable given to `useManagerLoadSuite`, 30 by default (CI). */
  loadSeconds: number;
  /** The test's timeout: the load, then up to 150 s of delivering, adopting and dropping (120 s at least). */
  timeoutMs: number;
  /**
   * Settings of a manager on `<the suite's prefix><label>/`: passes every 300 ms, one spare, a
   * 3 s session (a SIGKILLed leader is replaced within seconds; 1 s expired under load).
   */
  managerSettings(label: string, overrides: Partial<JobDbManagerSettings>): JobDbManagerSettings;
  /** A manager process on the suite's Consul (`startManagerProcess`); its databases are dropped after the file. */
  startManager(settings: JobDbManagerSettings, pod: string): Promise<ServiceProcess>;
  /** `sampleManagedDatabases`, stopped after the file too (when an assertion failed first). */
  sampleDatabases(settings: JobDbManagerSettings): ReturnType<typeof sampleManagedDatabases>;
  /**
   * RPC load for `seconds`: two posters sending batches of 10 jobs (source `web`, destination
   * `hook`) to the directors `urls()` names at the time, each as soon as the last is answered.
   */
  runLoad(urls: () => string[], seconds: number, label: string): Promise<RotationLoadResult>;
  /** Waits up to 90 s for each of `accepted` to reach the sink at `path` (or below it); then the deliveries by message id. */
  deliveries(path: string, accepted: string[]): Promise<Map<string, SinkRequest[]>>;
}

/**
 * The set-up of the load tests (rotation, scale), registered as jest hooks: the director suite,
 * the length of the load from `secondsEnv`,
 * and after the file the sampling stopped, every manager process SIGKILLed and the databases of
 * every manager's settings dropped.
 */
export function useManagerLoadSuite(secondsEnv: string): ManagerLoadSuite {
  const suite = useDirectorSuite() as ManagerLoadSuite;
  suite.loadSeconds = Number(process.env[secondsEnv] ?? 30);
  suite.timeoutMs = Math.max(120_000, (suite.loadSeconds + 150) * 1_000);
  suite.managerSettings = (label, overrides) =>
    testManagerSettings(`${suite.env.prefix}${label}/`, {
      JOBDB_MANAGER_INTERVAL_MS: 300,
      JOBDB_MANAGER_SESSION_TTL_MS: 3_000,
      JOBDB_SPARE: 1,
      ...overrides,
    });
  const managers: ServiceProcess[] = [];
  const samplers: Array<ReturnType<typeof sampleManagedDatabases>> = [];
  const managed = new Map<string, JobDbManagerSettings>();
  suite.startManager = async (settings, pod) => {
    managed.set(settings.JOBDB_DATABASE_PREFIX, settings);
    const p = await startManagerProcess(settings, pod, suite.consul.url);
    managers.push(p);
    return p;
  };
  suite.sampleDatabases = (settings) => {
    const sampler = sampleManagedDatabases(settings);
    samplers.push(sampler);
    return sampler;
  };
  suite.runLoad = (urls, seconds, label) =>
    runRotationLoad({
      urls,
      periods: seconds,
      periodMs: 1_000,
      posters: 2,
      batchSize: 10,
      maxBatchesPerPoster: 100_000,
      sourceId: 'web',
      destinationId: 'hook',
      runId: `${label}${Date.now().toString(36)}`,
    });
  suite.deliveries = async (path, accepted) => {
    await waitFor(() => {
      const delivered = deliveriesByMessage(suite.sink, path);
      return accepted.every((id) => delivered.has(id));
    }, 90_000).catch(() => undefined);
    return deliveriesByMessage(suite.sink, path);
  };
  afterAll(async () => {
    for (const s of samplers) await s.stop();
    for (const p of managers) await p.stop('SIGKILL');
    for (const settings of managed.values()) await dropManagedDatabases(settings);
  });
  return suite;
}
