import mysql from 'mysql2/promise';
import { ConsulKeys, type ConsulClient } from '@cdp/consul';
import { listen, type RunningServer } from '@cdp/http';
import { CONTROL_SCHEMA_VERSION, appendDeliveryStats, waitForControlSchema } from '@cdp/jobdb';
import { errorFields, registerSecret, type Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import type { DirectorConfig } from './config';
import { ControlWatcher } from './controls';
import { DeletionReports, type RegulationStatusSink } from './deletions';
import { ActionDriver } from './actions';
import { WebhookDriver, type DestinationDriver } from './destinations';
import { DeliveryEngine } from './engine';
import { JobDbHolder } from './holder';
import { JobHeaderPolicy } from './job-headers';
import { createRpcApp } from './rpc';
import { StatsCollector } from './stats';
import type { UndeliveredPublisher } from './undelivered';

export type DirectorSettings = Pick<
  DirectorConfig,
  | 'PORT'
  | 'MYSQL_URL'
  | 'CDP_CONTROL_DB'
  | 'CDP_CONSUL_PREFIX'
  | 'POD_NAME'
  | 'DIRECTOR_SESSION_TTL_MS'
  | 'DIRECTOR_LOCK_DELAY_MS'
  | 'DIRECTOR_RETRY_WINDOW_MS'
  | 'DIRECTOR_BACKOFF_BASE_MS'
  | 'DIRECTOR_BACKOFF_CAP_MS'
  | 'DIRECTOR_MAX_IN_FLIGHT'
  | 'DIRECTOR_CONNECTIONS_PER_ORIGIN'
  | 'DIRECTOR_BREAKER_FAILURES'
  | 'DIRECTOR_BREAKER_OPEN_MS'
  | 'DIRECTOR_BREAKER_MAX_OPEN_MS'
  | 'DIRECTOR_DRAIN_TIMEOUT_MS'
  | 'DIRECTOR_RECONCILE_INTERVAL_MS'
  | 'DIRECTOR_RPC_MAX_BODY_BYTES'
  | 'DIRECTOR_RPC_MAX_JOBS'
  | 'DIRECTOR_MAX_QUEUED_JOBS'
  | 'DIRECTOR_MAX_QUEUED_BYTES'
  | 'DIRECTOR_STATS_INTERVAL_MS'
  | 'DIRECTOR_JOBDB_POOL_SIZE'
  | 'DIRECTOR_WRITE_BATCH'
  | 'DIRECTOR_RPC_TOKEN'
  | 'DIRECTOR_RPC_INSECURE_NO_TOKEN'
  | 'DIRECTOR_RPC_ALLOWED_HEADERS'
  | 'DIRECTOR_ACTIONS_TIMEOUT_MS'
  | 'DIRECTOR_ACTIONS_BATCH_LINGER_MS'
  | 'DIRECTOR_ACTIONS_CA_FILE'
  | 'DIRECTOR_ACTIONS_CONNECT_TO'
>;

export interface DirectorDeps {
  consul: ConsulClient;
  publisher: UndeliveredPublisher;
  workspace: () => Workspace;
  logger: Logger;
  drivers?: Record<string, DestinationDriver>;
  /** cdp.regulation-status, for the destinations' part of GDPR deletions (none: not reported). */
  regulationStatus?: RegulationStatusSink;
  /** Host of the RPC listener; 0.0.0.0 in production, 127.0.0.1 in tests. */
  host?: string;
  random?: () => number;
}

/** The director: RPC in, JobDBs under Consul locks, fair delivery out, stats to cdp_control. */
export class Director {
  readonly engine: DeliveryEngine;
  readonly holder: JobDbHolder;
  readonly controls: ControlWatcher;
  readonly stats: StatsCollector;
  private readonly drivers: Record<string, DestinationDriver>;
  private rpc: RunningServer | undefined;
  private accepting = false;
  private statsPool: mysql.Pool | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private readonly starting = new AbortController();
  private readonly deletions: DeletionReports | undefined;

  constructor(
    private readonly settings: DirectorSettings,
    private readonly deps: DirectorDeps,
  ) {
    const { logger } = deps;
    if (settings.DIRECTOR_RPC_TOKEN === undefined && !settings.DIRECTOR_RPC_INSECURE_NO_TOKEN) {
      throw new Error('DIRECTOR_RPC_TOKEN is required (DIRECTOR_RPC_INSECURE_NO_TOKEN=true for local development only)');
    }
    registerSecret(settings.DIRECTOR_RPC_TOKEN);
    this.drivers = deps.drivers ?? {
      webhook: new WebhookDriver({ connectionsPerOrigin: settings.DIRECTOR_CONNECTIONS_PER_ORIGIN }),
      action: new ActionDriver({
        connectionsPerOrigin: settings.DIRECTOR_CONNECTIONS_PER_ORIGIN,
        timeoutMs: settings.DIRECTOR_ACTIONS_TIMEOUT_MS,
        batchLingerMs: settings.DIRECTOR_ACTIONS_BATCH_LINGER_MS,
        caFile: settings.DIRECTOR_ACTIONS_CA_FILE,
        connectTo: settings.DIRECTOR_ACTIONS_CONNECT_TO,
      }),
    };
    this.stats = new StatsCollector(settings.POD_NAME);
    const keys = new ConsulKeys(settings.CDP_CONSUL_PREFIX);
    this.controls = new ControlWatcher(deps.consul, keys, logger, () => this.engine.refreshPolicies());
    this.deletions =
      deps.regulationStatus &&
      new DeletionReports({ pool: () => this.statsPool, reporter: deps.regulationStatus, workspace: deps.workspace, logger });
    this.engine = new DeliveryEngine({
      logger,
      workspace: deps.workspace,
      drivers: this.drivers,
      publisher: deps.publisher,
      stats: this.stats,
      control: (id) => this.controls.get(id),
      backoff: { baseMs: settings.DIRECTOR_BACKOFF_BASE_MS, capMs: settings.DIRECTOR_BACKOFF_CAP_MS },
      breaker: {
        failureThreshold: settings.DIRECTOR_BREAKER_FAILURES,
        openMs: settings.DIRECTOR_BREAKER_OPEN_MS,
        maxOpenMs: settings.DIRECTOR_BREAKER_MAX_OPEN_MS,
      },
      maxInFlight: settings.DIRECTOR_MAX_IN_FLIGHT,
      maxQueuedBytes: settings.DIRECTOR_MAX_QUEUED_BYTES,
      random: deps.random,
      onFinal: (job) => this.deletions?.final(job),
    });
    this.holder = new JobDbHolder({
      consul: deps.consul,
      keys,
      pod: settings.POD_NAME,
      mysqlUrl: settings.MYSQL_URL,
      sessionTtlMs: settings.DIRECTOR_SESSION_TTL_MS,
      lockDelayMs: settings.DIRECTOR_LOCK_DELAY_MS,
      reconcileIntervalMs: settings.DIRECTOR_RECONCILE_INTERVAL_MS,
      poolSize: settings.DIRECTOR_JOBDB_POOL_SIZE,
      writeBatch: settings.DIRECTOR_WRITE_BATCH,
      engine: this.engine,
      logger,
    });
  }

  get url(): string | undefined {
    return this.rpc?.url;
  }

  /** Ready when it holds an active JobDB (otherwise RPC answers 503 anyway). */
  get isReady(): boolean {
    return this.accepting && this.holder.activeJobDb() !== undefined;
  }

  async start(): Promise<void> {
    const s = this.settings;
    // jobdb-manager owns cdp_control and migrates it; until the version this code writes exists
    // the director takes no JobDB and stays not-ready.
    let logged = false;
    const ready = await waitForControlSchema(s.MYSQL_URL, s.CDP_CONTROL_DB, {
      required: CONTROL_SCHEMA_VERSION,
      intervalMs: s.DIRECTOR_RECONCILE_INTERVAL_MS,
      signal: this.starting.signal,
      onWaiting: (found) => {
        if (logged) return;
        logged = true;
        this.deps.logger.warn(
          { database: s.CDP_CONTROL_DB, found, required: CONTROL_SCHEMA_VERSION },
          'waiting for jobdb-manager to migrate cdp_control to the schema version this director needs',
        );
      },
    });
    if (!ready) return;
    this.statsPool = mysql.createPool({
      uri: s.MYSQL_URL,
      database: s.CDP_CONTROL_DB,
      connectionLimit: 2,
      timezone: 'Z',
      jsonStrings: true,
      trace: false,
    });
    this.controls.start();
    this.engine.start();
    this.holder.start();
    // The current minute too: the Event Delivery page lags by one period at most (readers sum rows).
    this.statsTimer = setInterval(() => void this.flushStats(true), s.DIRECTOR_STATS_INTERVAL_MS);
    this.statsTimer.unref();
    const token = s.DIRECTOR_RPC_TOKEN;
    if (token === undefined)
      this.deps.logger.warn('DIRECTOR_RPC_INSECURE_NO_TOKEN: the RPC accepts calls from anyone; for local development only');
    const app = createRpcApp({
      logger: this.deps.logger,
      auth: token === undefined ? 'insecure-no-token' : { token },
      headers: new JobHeaderPolicy(s.DIRECTOR_RPC_ALLOWED_HEADERS),
      maxBodyBytes: s.DIRECTOR_RPC_MAX_BODY_BYTES,
      maxJobs: s.DIRECTOR_RPC_MAX_JOBS,
      defaultRetryWindowMs: s.DIRECTOR_RETRY_WINDOW_MS,
      workspace: this.deps.workspace,
      insert: (jobs) => this.holder.insert(jobs),
      accepting: () => this.accepting,
      overloaded: () => this.engine.scheduler.waiting >= s.DIRECTOR_MAX_QUEUED_JOBS || this.engine.budget.full,
    });
    this.accepting = true;
    this.rpc = await listen(app, s.PORT, this.deps.host ?? '0.0.0.0');
  }

  async flushStats(all: boolean): Promise<void> {
    if (!this.statsPool) return;
    const rows = this.stats.take(Date.now(), all);
    if (rows.length === 0) return;
    try {
      await appendDeliveryStats(this.statsPool, rows);
    } catch (error) {
      this.stats.restore(rows);
      this.deps.logger.warn({ ...errorFields(error), rows: rows.length }, 'delivery stats append failed; kept for the next flush');
    }
  }

  /** Stops taking jobs: new RPC calls get 503 while those in flight finish (2 s at most). */
  async closeRpc(): Promise<void> {
    // A start still waiting for the cdp_control schema ends without starting anything.
    this.starting.abort();
    this.accepting = false;
    await this.rpc?.close(2_000);
  }

  /** SIGTERM: stop RPC, finish in-flight calls (bounded), persist, release locks, destroy session. */
  async stop(): Promise<void> {
    await this.closeRpc();
    const drained = await this.engine.drain(this.settings.DIRECTOR_DRAIN_TIMEOUT_MS);
    if (!drained)
      this.deps.logger.warn(
        { inFlight: this.engine.inFlight },
        'drain timed out; unfinished attempts stay executing and are retried by the next holder',
      );
    this.controls.stop();
    await this.holder.stop();
    clearInterval(this.statsTimer);
    await this.flushStats(true);
    await this.deletions?.idle(); // the last deletions' records and reports, before the pool closes
    await this.statsPool?.end().catch(() => undefined);
    await Promise.all(Object.values(this.drivers).map((d) => d.close().catch(() => undefined)));
  }

  /**
   * Test hook simulating SIGKILL inside one process: nothing more is written, no lock is
   * released, the session is left to expire in Consul.
   */
  async kill(): Promise<void> {
    this.accepting = false;
    this.holder.kill();
    void this.engine.drain(0);
    await this.rpc?.close(0);
    clearInterval(this.statsTimer);
    await this.statsPool?.end().catch(() => undefined);
    await Promise.all(Object.values(this.drivers).map((d) => d.close().catch(() => undefined)));
  }
}
