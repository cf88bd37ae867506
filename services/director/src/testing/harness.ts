// Test helpers: JobDB provisioning on a private prefix, and directors (in the test's process or
// as real processes) wired to the real MariaDB, a Consul dev server and an HTTP sink.
import { fork } from 'node:child_process';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { bearer, RPC_AUTH_HEADER, RPC_JOBS_PATH } from '@cdp/director-rpc';
import { ConsulKeys, createConsulClient, type ConsulClient, type JobDbRecord } from '@cdp/consul';
import { createJobDbDatabase, dropJobDb, migrateControlDatabase, registerJobDb } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import {
  freePort,
  HttpSink,
  mysqlUrl,
  REPO_ROOT,
  requireEnv,
  startServiceProcess,
  testDatabaseName,
  waitFor,
  type ServiceProcess,
  type ServiceProcessOptions,
} from '@cdp/testkit';
import { parseWorkspace, type Workspace } from '@cdp/workspace';
import { directorEnv } from '../config';
import { Director, type DirectorDeps, type DirectorSettings } from '../service';
import type { UndeliveredPublisher } from '../undelivered';
import type { DirectorProcessSpec } from './director-process';

/** Records what would go to cdp.undelivered. */
export class MemoryPublisher implements UndeliveredPublisher {
  readonly records: Array<{ key: string; value: string }> = [];
  async publish(records: Array<{ key: string; value: string }>): Promise<void> {
    this.records.push(...records);
  }
}

export interface WebhookSpec {
  id: string;
  url: string;
  timeoutMs?: number;
  hmacSecretEnv?: string;
  maxConcurrency?: number;
  maxRatePerSecond?: number;
  headers?: Record<string, string>;
}

/**
 * A workspace file's JSON: every source connected to every webhook destination. Calls time out
 * after 30 s unless `timeoutMs` says otherwise (the tests about timeouts): with 2 s, a loaded
 * machine timed out calls the sink had answered, and the retry delivered twice (seen in the RPC
 * and admin tests).
 */
export function testWorkspaceJson(destinations: WebhookSpec[], sources = ['web']): string {
  return JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: sources.map((id) => ({ id, name: id, spaceId: 'main', writeKeys: [`wk_${id}`] })),
    destinations: destinations.map((d) => ({
      id: d.id,
      name: d.id,
      type: 'webhook',
      settings: {
        url: d.url,
        timeoutMs: d.timeoutMs ?? 30_000,
        headers: d.headers ?? {},
        ...(d.hmacSecretEnv ? { hmacSecret: { $env: d.hmacSecretEnv } } : {}),
      },
      limits: { maxConcurrency: d.maxConcurrency ?? 50, ...(d.maxRatePerSecond ? { maxRatePerSecond: d.maxRatePerSecond } : {}) },
    })),
    connections: sources.flatMap((s) => destinations.map((d) => ({ sourceId: s, destinationId: d.id }))),
  });
}

export function testWorkspace(destinations: WebhookSpec[], sources = ['web'], env: NodeJS.ProcessEnv = process.env): Workspace {
  return parseWorkspace(testWorkspaceJson(destinations, sources), { format: 'json', file: 'director-test.json', env });
}

/**
 * Session TTL of the tests whose subject is a dead holder's session running out (a kill, then
 * the takeover). Short to keep them quick, yet a pause under TTL / 2 (a renewal is due then)
 * keeps the lock: with 1 s, a loaded 2-core machine lost it before the kill (503s).
 */
export const EXPIRY_TEST_SESSION_TTL_MS = 4_000;

/**
 * Short timings for tests, as env: what `testSettings` parses and what director processes get
 * (the token stays out: rpc-auth starts directors without one). The session TTL is the service's
 * default, 10 s: a test director loses its locks (the RPC answers 503, calls in flight are
 * retried as interrupted) after a pause of about TTL / 2, and pauses of seconds happen on the
 * loaded 2-core machine; tests about expiry set EXPIRY_TEST_SESSION_TTL_MS.
 */
export const TEST_DIRECTOR_ENV: Record<string, string> = {
  DIRECTOR_SESSION_TTL_MS: '10000',
  DIRECTOR_LOCK_DELAY_MS: '500',
  DIRECTOR_RETRY_WINDOW_MS: '3600000',
  DIRECTOR_BACKOFF_BASE_MS: '100',
  DIRECTOR_BACKOFF_CAP_MS: '400',
  DIRECTOR_CONNECTIONS_PER_ORIGIN: '64',
  DIRECTOR_BREAKER_OPEN_MS: '500',
  DIRECTOR_BREAKER_MAX_OPEN_MS: '5000',
  DIRECTOR_DRAIN_TIMEOUT_MS: '5000',
  DIRECTOR_RECONCILE_INTERVAL_MS: '250',
  DIRECTOR_JOBDB_POOL_SIZE: '4',
};

/** Settings of an in-process test director: the service's schema and defaults with TEST_DIRECTOR_ENV. */
export function testSettings(prefix: string, overrides: Partial<DirectorSettings> = {}): DirectorSettings {
  const parsed = directorEnv.parse({
    ...TEST_DIRECTOR_ENV,
    PORT: '0',
    MYSQL_URL: mysqlUrl(),
    CDP_CONTROL_DB: testDatabaseName('ctl'),
    CDP_CONSUL_PREFIX: prefix,
    POD_NAME: `pod-${Math.random().toString(36).slice(2, 8)}`,
    DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN,
    // Read by the service's main only: an in-process director gets its Consul client, workspace
    // and publisher as deps, so these are never used.
    CONSUL_HTTP_ADDR: 'http://127.0.0.1:9',
    CDP_WORKSPACE_FILE: 'unused.json',
    KAFKA_BROKERS: '127.0.0.1:9',
  });
  return { ...parsed, ...overrides };
}

export interface JobDbHandle extends JobDbRecord {
  id: string;
  database: string;
}

/** What a director process reports of each JobDB it holds (`directorProcess(…).held()`). */
export interface HeldJobDb {
  id: string;
  state: string;
  rebuilding: boolean;
  openJobs: number;
}

export type TestDirectorDeps = Partial<DirectorDeps> & { workspace: () => Workspace; publisher?: UndeliveredPublisher };

/** A director on 127.0.0.1 with the Consul at `consulUrl`, undelivered records kept in memory and quiet logs unless given. */
export function testDirector(settings: DirectorSettings, consulUrl: string, deps: TestDirectorDeps): Director {
  return new Director(settings, {
    consul: deps.consul ?? createConsulClient(consulUrl),
    publisher: deps.publisher ?? new MemoryPublisher(),
    logger: deps.logger ?? createLogger({ name: 'director-test', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' }),
    host: '127.0.0.1',
    ...deps,
  });
}

export interface DirectorMainSpec {
  controlDb: string;
  workspaceFile: string;
  /** Its topics' prefix (it requires `<prefix>undelivered` and `<prefix>regulation-status`). */
  topicPrefix: string;
  /** Added to or overriding the env (e.g. DIRECTOR_RPC_TOKEN, which is not set otherwise). */
  env?: Record<string, string>;
}

/** A director main.js process; `rpc` is its RPC's base URL. */
export interface DirectorMain extends ServiceProcess {
  rpc: string;
}

/** Consul prefix + JobDBs + control databases of one test file, removed by `cleanup()`. */
export class TestEnv {
  readonly keys: ConsulKeys;
  readonly consul: ConsulClient;
  private readonly jobDbs: JobDbHandle[] = [];
  private readonly extraDatabases = new Set<string>();
  private readonly directors: Array<{ stop(): Promise<unknown> }> = [];

  constructor(
    readonly consulUrl: string,
    /** A fresh one per TestEnv unless given (e.g. a sub-folder of another TestEnv's). */
    readonly prefix = `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}/`,
  ) {
    this.keys = new ConsulKeys(prefix);
    this.consul = createConsulClient(consulUrl);
  }

  /** JobDBs provisioned so far, oldest first. */
  get provisioned(): readonly JobDbHandle[] {
    return this.jobDbs;
  }

  /**
   * Creates a JobDB; `prepare` runs on the database before it is registered in Consul (so no
   * director can take it while the test fills it).
   */
  async provision(
    label: string,
    state: JobDbRecord['state'] = 'active',
    prepare?: (database: string) => Promise<void>,
  ): Promise<JobDbHandle> {
    const id = `${label}${Math.random().toString(36).slice(2, 7)}`;
    const database = testDatabaseName(`jdb_${label}`);
    const record: JobDbRecord = { state, dsnRef: database, createdAt: new Date().toISOString() };
    const handle: JobDbHandle = { ...record, id, database };
    this.jobDbs.push(handle);
    await createJobDbDatabase(mysqlUrl(), database, id);
    if (prepare) await prepare(database);
    await registerJobDb(this.consul, this.keys, id, record);
    return handle;
  }

  /**
   * The service itself (dist/main.js; build first) as a process on this env's Consul prefix, with
   * TEST_DIRECTOR_ENV and `spec.env` on top; killed and its control DB dropped by `cleanup()`.
   */
  async directorMain(pod: string, spec: DirectorMainSpec, options: ServiceProcessOptions = {}): Promise<DirectorMain> {
    await this.controlDb(spec.controlDb);
    const port = await freePort();
    const proc = await startServiceProcess(
      'director',
      {
        ...TEST_DIRECTOR_ENV,
        PORT: String(port),
        MYSQL_URL: mysqlUrl(),
        CDP_CONTROL_DB: spec.controlDb,
        CONSUL_HTTP_ADDR: this.consulUrl,
        CDP_CONSUL_PREFIX: this.prefix,
        KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
        CDP_TOPIC_PREFIX: spec.topicPrefix,
        CDP_WORKSPACE_FILE: spec.workspaceFile,
        POD_NAME: pod,
        ...spec.env,
      },
      options,
    );
    this.directors.push({ stop: () => proc.stop('SIGKILL') });
    return Object.assign(proc, { rpc: `http://127.0.0.1:${port}` });
  }

  /**
   * Migrates a control database as jobdb-manager does (directors wait for its schema version)
   * and drops it at `cleanup()`.
   */
  controlDb(database: string): Promise<void> {
    this.extraDatabases.add(database);
    return migrateControlDatabase(mysqlUrl(), database).then(() => undefined);
  }

  /** An in-process director; its control database is migrated meanwhile (its start waits for it). */
  director(settings: DirectorSettings, deps: TestDirectorDeps): Director {
    void this.controlDb(settings.CDP_CONTROL_DB).catch((error: unknown) => {
      throw new Error(`control database ${settings.CDP_CONTROL_DB}: ${(error as Error).message}`);
    });
    const d = testDirector(settings, this.consulUrl, deps);
    this.directors.push(d);
    return d;
  }

  /**
   * A director in its own plain-Node process (dist/testing/director-process.js; build first),
   * for measurements the test runner's sandbox would distort, or to stop it by a signal
   * (`kill`: SIGTERM drains as in production, SIGKILL). Stopped by `cleanup()`.
   */
  async directorProcess(
    settings: DirectorSettings,
    destinations: WebhookSpec[],
    sources: string[],
  ): Promise<{
    url: string;
    pid: number;
    stop(): Promise<void>;
    kill(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
    /** The JobDBs it holds: whether each is still being rebuilt, and its open jobs loaded so far. */
    held(): Promise<HeldJobDb[]>;
  }> {
    await this.controlDb(settings.CDP_CONTROL_DB);
    const spec: DirectorProcessSpec = { settings, consulUrl: this.consulUrl, destinations, sources };
    // TEST_DIRECTOR_NODE_ARGS: extra Node flags for the director process (e.g. --cpu-prof to see where its time goes).
    const execArgv = (process.env.TEST_DIRECTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = fork(path.join(REPO_ROOT, 'services/director/dist/testing/director-process.js'), [JSON.stringify(spec)], {
      stdio: 'inherit',
      execArgv,
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) child.send('stop');
      await exited;
    };
    const kill = async (signal: 'SIGTERM' | 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    };
    this.directors.push({ stop });
    const reply = await new Promise<{ url?: string; error?: string }>((resolve) => {
      child.once('message', resolve);
      child.once('exit', (code) => resolve({ error: `exited with ${code}` }));
    });
    if (!reply.url) throw new Error(`director process: ${reply.error}`);
    const held = () =>
      new Promise<HeldJobDb[]>((resolve) => {
        const onMessage = (m: { held?: HeldJobDb[] }) => {
          if (!m.held) return;
          child.off('message', onMessage);
          resolve(m.held);
        };
        child.on('message', onMessage);
        child.send('held');
      });
    return { url: reply.url, pid: child.pid!, stop, kill, held };
  }

  async query<T extends mysql.RowDataPacket[]>(database: string, sql: string, params: unknown[] = []): Promise<T> {
    const conn = await mysql.createConnection({ uri: mysqlUrl(), database, timezone: 'Z', jsonStrings: true });
    try {
      const [rows] = await conn.query<T>(sql, params);
      return rows;
    } finally {
      await conn.end();
    }
  }

  async cleanup(): Promise<void> {
    for (const d of this.directors) await d.stop().catch(() => undefined);
    for (const j of this.jobDbs)
      await dropJobDb({ url: mysqlUrl(), consul: this.consul, keys: this.keys, id: j.id, database: j.database }).catch(() => undefined);
    const conn = await mysql.createConnection({ uri: mysqlUrl() });
    for (const db of this.extraDatabases) await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await conn.end();
    await this.consul.close();
  }
}

export { waitFor };

/** The RPC token of test directors (`testSettings`); `postJobs` sends it unless told otherwise. */
export const TEST_RPC_TOKEN = 'test-director-rpc-token-0123456789';

/** Headers of an RPC call with `token` (none when undefined). */
export function rpcHeaders(token: string | undefined): Record<string, string> {
  return { 'content-type': 'application/json', ...(token === undefined ? {} : { [RPC_AUTH_HEADER]: bearer(token) }) };
}

/** `POST /v1/jobs` with the test token, or `{ token }` (undefined: no Authorization header). */
export async function postJobs(
  url: string,
  jobs: unknown[],
  options: { token?: string } = { token: TEST_RPC_TOKEN },
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}${RPC_JOBS_PATH}`, { method: 'POST', headers: rpcHeaders(options.token), body: JSON.stringify({ jobs }) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // keep text
  }
  return { status: res.status, body };
}

/** An RPC job from source `web` whose payload is a track event with its messageId; `extra` adds or overrides fields. */
export function testJob(messageId: string, destinationId = 'hook', extra: Record<string, unknown> = {}) {
  return {
    sourceId: 'web',
    messageId,
    destinationId,
    subscriptionId: 'default',
    payload: { type: 'track', messageId, event: 'E' },
    ...extra,
  };
}

/** `n` test jobs whose messageIds are `${idPrefix}${from + i}`. */
export function testJobs(
  n: number,
  idPrefix: string,
  options: { from?: number; destinationId?: string; extra?: Record<string, unknown> } = {},
) {
  return Array.from({ length: n }, (_, i) => testJob(`${idPrefix}${(options.from ?? 0) + i}`, options.destinationId, options.extra));
}

/** Final state of every job of a JobDB: job id → list of to-states in order. */
export async function historyOf(
  env: TestEnv,
  database: string,
): Promise<Map<string, { messageId: string; states: string[]; rows: mysql.RowDataPacket[] }>> {
  const jobs = await env.query<mysql.RowDataPacket[]>(database, 'SELECT id, message_id FROM jobs');
  const rows = await env.query<mysql.RowDataPacket[]>(database, 'SELECT * FROM job_state_transitions ORDER BY id');
  const out = new Map<string, { messageId: string; states: string[]; rows: mysql.RowDataPacket[] }>();
  for (const j of jobs) out.set(String(j.id), { messageId: String(j.message_id), states: [], rows: [] });
  for (const r of rows) {
    const h = out.get(String(r.job_id));
    if (!h) continue;
    h.states.push(String(r.to_state));
    h.rows.push(r);
  }
  return out;
}

export interface DirectorSuite {
  consul: ConsulDevServer;
  env: TestEnv;
  sink: HttpSink;
}

/**
 * The set-up most director test files share, registered as jest hooks: a Consul dev server
 * with short session TTLs, a TestEnv on it and a started sink, all closed after the file.
 */
export function useDirectorSuite(): DirectorSuite {
  const suite = {} as DirectorSuite;
  beforeAll(async () => {
    suite.consul = await startConsulDevServer({ minTtlMs: 500, ttlMultiplier: 1 });
    suite.env = new TestEnv(suite.consul.url);
    suite.sink = await new HttpSink().start();
  });
  afterAll(async () => {
    await suite.env.cleanup();
    await suite.sink.close();
    await suite.consul.close();
  });
  return suite;
}
