// Test helpers: a controllable HTTP sink, JobDB provisioning on a private prefix, and
// directors wired to the real MariaDB and a Consul dev server.
import { fork } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { bearer, DEFAULT_ALLOWED_JOB_HEADERS, RPC_AUTH_HEADER, RPC_JOBS_PATH } from '@cdp/director-rpc';
import { ConsulKeys, createConsulClient, type ConsulClient, type JobDbRecord } from '@cdp/consul';
import { createJobDbDatabase, dropJobDb, registerJobDb } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { mysqlUrl, REPO_ROOT, testDatabaseName, waitFor } from '@cdp/testkit';
import { parseWorkspace, type Workspace } from '@cdp/workspace';
import { Director, type DirectorDeps, type DirectorSettings } from '../service';
import type { UndeliveredPublisher } from '../undelivered';
import type { DirectorProcessSpec } from './director-process';

export interface SinkRequest {
  path: string;
  method: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
  /** Set when the client closed the connection before this request was answered. */
  closedUnanswered?: boolean;
  /** Other requests to the same path that had arrived and were not answered yet when this one arrived. */
  concurrent: number;
  /** When its answer was sent (Date.now() of the sink, like `at`). */
  answeredAt?: number;
}

export interface SinkAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

/** 'hang' never answers (timeouts); 'reset' destroys the connection (connection reset). */
export type SinkHandler = (req: SinkRequest, count: number) => SinkAnswer | 'hang' | 'reset';

/** An HTTP sink on 127.0.0.1 whose answer per path is chosen by the test. */
export class Sink {
  readonly requests: SinkRequest[] = [];
  private readonly counts = new Map<string, number>();
  private readonly unanswered = new Map<string, number>();
  private readonly handlers = new Map<string, SinkHandler>();
  private server!: http.Server;
  url = '';

  route(path: string, handler: SinkHandler): void {
    this.handlers.set(path, handler);
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = (req.url ?? '/').split('?')[0];
        const concurrent = this.unanswered.get(path) ?? 0;
        const entry: SinkRequest = { path, method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), concurrent };
        this.requests.push(entry);
        const n = (this.counts.get(path) ?? 0) + 1;
        this.counts.set(path, n);
        this.unanswered.set(path, concurrent + 1);
        res.on('close', () => {
          if (res.writableEnded) return;
          entry.closedUnanswered = true;
          this.unanswered.set(path, (this.unanswered.get(path) ?? 1) - 1);
        });
        const handler: SinkHandler = this.handlers.get(path) ?? (() => ({ status: 200 }));
        const answer = handler(entry, n);
        if (answer === 'hang') return; // never answers: the director's timeout fires
        if (answer === 'reset') {
          req.socket.resetAndDestroy();
          return;
        }
        const send = () => {
          entry.answeredAt = Date.now();
          this.unanswered.set(path, (this.unanswered.get(path) ?? 1) - 1);
          res.writeHead(answer.status, answer.headers ?? {});
          res.end(answer.body ?? '');
        };
        if (answer.delayMs) setTimeout(send, answer.delayMs);
        else send();
      });
    });
    this.server.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(path: string): number {
    return this.counts.get(path) ?? 0;
  }

  /** Requests to `path` whose connection the client closed before they were answered. */
  closedUnanswered(path: string): number {
    return this.requests.filter((r) => r.path === path && r.closedUnanswered).length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

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

export function testWorkspace(destinations: WebhookSpec[], sources = ['web'], env: NodeJS.ProcessEnv = process.env): Workspace {
  return parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: sources.map((id) => ({ id, name: id, spaceId: 'main', writeKeys: [`wk_${id}`] })),
      destinations: destinations.map((d) => ({
        id: d.id,
        name: d.id,
        type: 'webhook',
        settings: {
          url: d.url,
          timeoutMs: d.timeoutMs ?? 2_000,
          headers: d.headers ?? {},
          ...(d.hmacSecretEnv ? { hmacSecret: { $env: d.hmacSecretEnv } } : {}),
        },
        limits: { maxConcurrency: d.maxConcurrency ?? 50, ...(d.maxRatePerSecond ? { maxRatePerSecond: d.maxRatePerSecond } : {}) },
      })),
      connections: sources.flatMap((s) => destinations.map((d) => ({ sourceId: s, destinationId: d.id }))),
    }),
    { format: 'json', file: 'director-test.json', env },
  );
}

export function testSettings(prefix: string, overrides: Partial<DirectorSettings> = {}): DirectorSettings {
  return {
    PORT: 0,
    MYSQL_URL: mysqlUrl(),
    CDP_CONTROL_DB: testDatabaseName('ctl'),
    CDP_CONSUL_PREFIX: prefix,
    POD_NAME: `pod-${Math.random().toString(36).slice(2, 8)}`,
    DIRECTOR_SESSION_TTL_MS: 1_000,
    DIRECTOR_LOCK_DELAY_MS: 500,
    DIRECTOR_RETRY_WINDOW_MS: 3_600_000,
    DIRECTOR_BACKOFF_BASE_MS: 100,
    DIRECTOR_BACKOFF_CAP_MS: 400,
    DIRECTOR_MAX_IN_FLIGHT: 2_000,
    DIRECTOR_CONNECTIONS_PER_ORIGIN: 64,
    DIRECTOR_BREAKER_FAILURES: 20,
    DIRECTOR_BREAKER_OPEN_MS: 500,
    DIRECTOR_BREAKER_MAX_OPEN_MS: 5_000,
    DIRECTOR_DRAIN_TIMEOUT_MS: 5_000,
    DIRECTOR_RECONCILE_INTERVAL_MS: 250,
    DIRECTOR_RPC_MAX_BODY_BYTES: 16 * 1024 * 1024,
    DIRECTOR_RPC_MAX_JOBS: 5_000,
    DIRECTOR_MAX_QUEUED_JOBS: 200_000,
    DIRECTOR_STATS_INTERVAL_MS: 60_000,
    DIRECTOR_JOBDB_POOL_SIZE: 4,
    DIRECTOR_WRITE_BATCH: 2_000,
    DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN,
    DIRECTOR_RPC_INSECURE_NO_TOKEN: false,
    DIRECTOR_RPC_ALLOWED_HEADERS: [...DEFAULT_ALLOWED_JOB_HEADERS],
    ...overrides,
  };
}

export interface JobDbHandle extends JobDbRecord {
  id: string;
  database: string;
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
  async provision(label: string, state: JobDbRecord['state'] = 'active', prepare?: (database: string) => Promise<void>): Promise<JobDbHandle> {
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

  director(settings: DirectorSettings, deps: TestDirectorDeps): Director {
    this.extraDatabases.add(settings.CDP_CONTROL_DB);
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
  ): Promise<{ url: string; stop(): Promise<void>; kill(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> }> {
    this.extraDatabases.add(settings.CDP_CONTROL_DB);
    const spec: DirectorProcessSpec = { settings, consulUrl: this.consulUrl, destinations, sources };
    // TEST_DIRECTOR_NODE_ARGS: extra Node flags for the director process (e.g. --cpu-prof to see where its time goes).
    const execArgv = (process.env.TEST_DIRECTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = fork(path.join(REPO_ROOT, 'services/director/dist/testing/director-process.js'), [JSON.stringify(spec)], { stdio: 'inherit', execArgv });
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
    return { url: reply.url, stop, kill };
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
    for (const j of this.jobDbs) await dropJobDb({ url: mysqlUrl(), consul: this.consul, keys: this.keys, id: j.id, database: j.database }).catch(() => undefined);
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
export async function postJobs(url: string, jobs: unknown[], options: { token?: string } = { token: TEST_RPC_TOKEN }): Promise<{ status: number; body: unknown }> {
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

/** Final state of every job of a JobDB: job id → list of to-states in order. */
export async function historyOf(env: TestEnv, database: string): Promise<Map<string, { messageId: string; states: string[]; rows: mysql.RowDataPacket[] }>> {
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
  sink: Sink;
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
    suite.sink = new Sink();
    await suite.sink.start();
  });
  afterAll(async () => {
    await suite.env.cleanup();
    await suite.sink.close();
    await suite.consul.close();
  });
  return suite;
}
