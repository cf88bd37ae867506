import { setMaxListeners } from 'node:events';
import { directorSessionName, isDirectorSession, type ConsulClient, type ConsulKeys, type JobDbEntry, type LockHolder } from '@cdp/consul';
import { ConsulSession, type ConsulLock } from '@cdp/consul-lock';
import {
  FencedError,
  INTERRUPTED_ERROR,
  JobDb,
  StaleLeaseError,
  UnknownSchemaVersionError,
  checkSchemaVersion,
  listJobDbs,
  setJobDbState,
  type JobInsertStatus,
  type NewJob,
  type OpenJobHead,
  type Transition,
} from '@cdp/jobdb';
import { errorFields, type Logger } from '@cdp/log';
import type { DeliveryEngine, JobSink } from './engine';
import { CONTENT_OVERHEAD_BYTES, JOB_METADATA_BYTES } from './budget';
import { ContentReader } from './content';
import { jobContent, type Job } from './job';
import { jobDbInsertDuration, jobDbsHeld, jobDbsRefused, lockLosses, staleLeases } from './metrics';
import { TransitionWriter } from './writer';

export interface HolderOptions {
  consul: ConsulClient;
  keys: ConsulKeys;
  pod: string;
  mysqlUrl: string;
  sessionTtlMs: number;
  lockDelayMs: number;
  reconcileIntervalMs: number;
  poolSize: number;
  writeBatch: number;
  engine: DeliveryEngine;
  logger: Logger;
  now?: () => number;
}

interface Held {
  id: string;
  state: 'active' | 'draining';
  lock: ConsulLock;
  db: JobDb;
  leaseId: number;
  writer: TransitionWriter;
  sink: JobSink;
  /** Aborts this JobDB's destination calls in flight (see JobSink.signal). */
  calls: AbortController;
  /** Set while (and once) the drained decision seals it: its own writes are then fenced on purpose. */
  sealing: boolean;
  /** Set while its open jobs are being loaded (JobDbHolder.rebuild): it is not drained before that ends. */
  rebuilding: boolean;
}

/** What an insert did, per job of the call (JobDb.insertJobs) and counted. */
export interface InsertAnswer {
  stored: number;
  duplicates: number;
  rejected: number;
  results: JobInsertStatus[];
}

export class NoActiveJobDbError extends Error {
  constructor() {
    super('this director holds no active JobDB');
    this.name = 'NoActiveJobDbError';
  }
}

/** Open jobs read per rebuild query (one page; their contents are read for those the budget holds). */
const REBUILD_PAGE = 5_000;
/** How long a JobDB refused for the memory budget is left alone before its open jobs are counted again. */
const BUDGET_RECHECK_MS = 30_000;

/**
 * A rebuilt job without its content. Source and destination ids come through `intern`: a
 * million jobs share a few strings instead of holding two copies each.
 */
function headJob(jobDbId: string, head: OpenJobHead, intern: (s: string) => string): Job {
  return {
    id: head.id,
    jobDbId,
    sourceId: intern(head.sourceId),
    destinationId: intern(head.destinationId),
    expiresAt: head.expiresAt.getTime(),
    state: head.state,
    attempt: head.attempt,
    nextRetryAt: head.nextRetryAt === null ? null : head.nextRetryAt.getTime(),
    content: null,
    contentBytes: 0,
  };
}

function interner(): (s: string) => string {
  const seen = new Map<string, string>();
  return (s) => {
    const known = seen.get(s);
    if (known !== undefined) return known;
    seen.set(s, s);
    return s;
  };
}

/**
 * Holds this director's JobDBs under one Consul session `director:<pod>`: one `active`
 * JobDB for new jobs plus the `draining` ones it still executes. Follows `cdp/jobdbs/` with
 * a blocking-query watch and a periodic pass (a lock-delay ends without any KV change).
 */
export class JobDbHolder {
  private session: ConsulSession | undefined;
  private readonly held = new Map<string, Held>();
  /** JobDBs refused for their schema version (logged and counted once each; checked again every pass). */
  private readonly refused = new Set<string>();
  /** JobDBs refused for the memory budget: when, and how many open jobs they had. */
  private readonly overBudget = new Map<string, { at: number; open: number }>();
  private watch: { end(): void } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: HolderOptions) {
    this.now = options.now ?? Date.now;
  }

  get sessionId(): string | undefined {
    return this.session?.id;
  }

  /**
   * The JobDB new jobs go to, if this director holds one and may write to it. Not while it is
   * being rebuilt: a job inserted then could also be read by a rebuild page and held twice.
   */
  activeJobDb(): Held | undefined {
    for (const h of this.held.values()) if (h.state === 'active' && !h.rebuilding && h.lock.isHeld && !h.writer.stopped) return h;
    return undefined;
  }

  heldJobDbs(): Array<{ id: string; state: string; leaseId: number; lockIndex: number; fencingToken: number; rebuilding: boolean }> {
    return [...this.held.values()].map((h) => ({
      id: h.id,
      state: h.state,
      leaseId: h.leaseId,
      lockIndex: h.lock.lockIndex,
      fencingToken: h.lock.acquiredIndex,
      rebuilding: h.rebuilding,
    }));
  }

  /** Test hook: the session, e.g. to pause its renewals as if the process froze. */
  get currentSession(): ConsulSession | undefined {
    return this.session;
  }

  start(): void {
    const { consul, keys } = this.options;
    const watch = consul.watch(consul.kv.prefix(keys.jobDbs), { wait: '30s', backoffFactorMs: 100, backoffMaxMs: 5_000 });
    watch.on('change', () => this.reconcile());
    watch.on('error', (error) => this.options.logger.debug(errorFields(error), 'jobdbs watch error; retrying'));
    this.watch = watch;
    this.timer = setInterval(() => this.reconcile(), this.options.reconcileIntervalMs);
    this.timer.unref();
    this.reconcile();
  }

  /** Runs one pass now (coalesced with a running one). */
  reconcile(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.reconciling) {
      this.again = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (error) {
          this.options.logger.warn(errorFields(error), 'jobdb reconcile pass failed');
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async ensureSession(): Promise<ConsulSession | undefined> {
    if (this.session && this.session.state === 'active') return this.session;
    const session = await ConsulSession.create(this.options.consul, {
      name: directorSessionName(this.options.pod),
      ttl: `${this.options.sessionTtlMs}ms`,
      lockDelay: `${this.options.lockDelayMs}ms`,
      behavior: 'release',
      logger: this.options.logger.child({ component: 'consul-lock' }),
    });
    session.on('lost', (reason) => {
      this.options.logger.warn({ reason }, 'director session lost: stopped executing every JobDB; will try again');
      void this.reconcile();
    });
    if (this.stopped) {
      await session.destroy().catch(() => undefined);
      return undefined;
    }
    this.session = session;
    return session;
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    const session = await this.ensureSession();
    if (!session) return;
    const entries = await listJobDbs(this.options.consul, this.options.keys);
    const byId = new Map(entries.map((e) => [e.id, e]));

    for (const h of this.held.values()) {
      const entry = byId.get(h.id);
      if (entry?.state === 'draining' && h.state === 'active') {
        h.state = 'draining';
        this.options.logger.info({ jobDb: h.id }, 'JobDB rotated to draining: no new jobs, retries continue');
      }
    }

    // One active JobDB (a rebuilding one counts: it takes new jobs once rebuilt).
    if (![...this.held.values()].some((h) => h.state === 'active' && h.lock.isHeld && !h.writer.stopped)) {
      for (const e of entries) {
        if (e.state !== 'active' || e.holder !== undefined || this.held.has(e.id)) continue;
        if (await this.take(session, e)) break;
      }
    }

    for (const h of [...this.held.values()]) {
      if (h.state === 'draining') await this.maybeDrained(h, byId.get(h.id));
    }

    const orphans = entries.filter((e) => e.state === 'draining' && e.holder === undefined && !this.held.has(e.id));
    // One adoption at a time: the next one's budget check counts the last one's jobs.
    const rebuilding = [...this.held.values()].some((h) => h.rebuilding);
    if (orphans.length > 0 && !rebuilding && (await this.leastLoaded(session, entries))) {
      // One adoption per pass; a refused one does not block the next.
      for (const orphan of orphans) if (await this.take(session, orphan)) break;
    }
    this.updateGauge();
  }

  /** True when no live director holds fewer JobDBs than this one (ties: lowest session id). */
  private async leastLoaded(session: ConsulSession, entries: JobDbEntry[]): Promise<boolean> {
    const live = (await this.options.consul.session.list()).filter((s) => isDirectorSession(s.Name));
    const load = new Map<string, number>(live.map((s) => [s.ID, 0]));
    for (const e of entries) if (e.holder && load.has(e.holder)) load.set(e.holder, load.get(e.holder)! + 1);
    const mine = load.get(session.id) ?? this.held.size;
    for (const [id, n] of load) {
      if (id === session.id) continue;
      if (n < mine || (n === mine && id < session.id)) return false;
    }
    return true;
  }

  /** False (logged and counted once) when the JobDB's schema version is one this code does not know. */
  private async knownSchema(entry: JobDbEntry): Promise<boolean> {
    try {
      await checkSchemaVersion(this.options.mysqlUrl, entry.dsnRef);
      this.refused.delete(entry.id);
      return true;
    } catch (error) {
      if (!(error instanceof UnknownSchemaVersionError)) {
        this.options.logger.warn({ ...errorFields(error), jobDb: entry.id }, 'could not read JobDB schema version');
      } else if (!this.refused.has(entry.id)) {
        this.refused.add(entry.id);
        jobDbsRefused.inc({ reason: 'schema_version' });
        this.options.logger.error({ jobDb: entry.id, state: entry.state, schemaVersion: error.found }, `refusing JobDB: ${error.message}`);
      }
      return false;
    }
  }

  private async take(session: ConsulSession, entry: JobDbEntry): Promise<boolean> {
    const { logger } = this.options;
    // Before the lock: a JobDB this version cannot use stays free for a director that can.
    if (!(await this.knownSchema(entry))) return false;
    if (!(await this.fitsBudget(entry))) return false;
    let lock: ConsulLock | null;
    try {
      lock = await session.acquire(this.options.keys.jobDbLock(entry.id), JSON.stringify({ pod: this.options.pod } satisfies LockHolder));
    } catch (error) {
      logger.warn({ ...errorFields(error), jobDb: entry.id }, 'lock acquire failed');
      return false;
    }
    if (!lock) return false;
    const db = new JobDb({ url: this.options.mysqlUrl, database: entry.dsnRef, poolSize: this.options.poolSize });
    try {
      // The key's ModifyIndex read right after acquiring: above that of every earlier acquisition.
      const leaseId = await db.takeLease({
        fencingToken: lock.acquiredIndex,
        lockIndex: lock.lockIndex,
        holder: this.options.pod,
        sessionId: session.id,
      });
      if (!lock.isHeld) throw new Error('lock lost while taking the lease');
      const writer = new TransitionWriter(db, leaseId, logger.child({ jobDb: entry.id }), this.options.writeBatch, (error) =>
        this.fenced(held, error),
      );
      const calls = new AbortController();
      // One listener per call in flight (removed when it ends): thousands are normal.
      setMaxListeners(0, calls.signal);
      const held: Held = {
        id: entry.id,
        state: entry.state === 'active' ? 'active' : 'draining',
        lock,
        db,
        leaseId,
        writer,
        calls,
        sealing: false,
        rebuilding: true,
        sink: {
          jobDbId: entry.id,
          get writable() {
            return lock.isHeld && !writer.stopped;
          },
          signal: calls.signal,
          write: (rows: Transition[]) => writer.write(rows),
          readContent: (jobId: string) => contents.read(jobId),
        },
      };
      const contents = new ContentReader((ids) => db.loadJobContents(ids));
      this.held.set(entry.id, held);
      lock.on('lost', (reason, detail) => this.lose(entry.id, reason, detail));
      // Lost while taking the lease: the event fired before the listener existed.
      if (!lock.isHeld) {
        this.lose(entry.id, lock.lostReason ?? 'session-lost', 'lock lost while taking the JobDB');
        return false;
      }
      this.options.engine.attach(held.sink, []);
      logger.info({ jobDb: entry.id, state: held.state, leaseId, lockIndex: lock.lockIndex }, 'JobDB taken; rebuilding its open jobs');
      this.updateGauge();
      // In the background: a JobDB of a million open jobs takes a while, and new jobs (an
      // active JobDB) or other JobDBs need not wait for it.
      void this.rebuild(held);
      return true;
    } catch (error) {
      if (error instanceof StaleLeaseError) staleLeases.inc();
      logger.warn({ ...errorFields(error), jobDb: entry.id }, 'could not take JobDB; releasing its lock');
      await lock.release().catch(() => undefined);
      await db.close().catch(() => undefined);
      return false;
    }
  }

  /** Rebuilds a JobDB just taken (loadOpenJobs); on an error it lets the JobDB go, to be taken again. */
  private async rebuild(h: Held): Promise<void> {
    const started = this.now();
    try {
      const counts = await this.loadOpenJobs(h);
      if (!counts) return;
      this.options.logger.info({ jobDb: h.id, ...counts, rebuildMs: this.now() - started }, 'JobDB rebuilt');
    } catch (error) {
      if (this.held.get(h.id) !== h) return;
      this.options.logger.warn({ ...errorFields(error), jobDb: h.id }, 'could not rebuild JobDB; releasing its lock');
      await this.release(h);
    } finally {
      h.rebuilding = false;
    }
    void this.reconcile();
  }

  /**
   * Loads the open jobs of a JobDB just taken, page by page, into the engine: every job's
   * metadata, and its content while the memory budget has room (the others are read back when
   * due). Jobs left `executing` by a dead holder get an `executing → awaiting_retry` transition
   * ("interrupted") and are retried at once. Undefined when the JobDB was lost meanwhile.
   */
  private async loadOpenJobs(h: Held): Promise<{ rebuilt: number; withContent: number; interrupted: number } | undefined> {
    const { engine } = this.options;
    const intern = interner();
    const counts = { rebuilt: 0, withContent: 0, interrupted: 0 };
    for (let after: string | null = null; ;) {
      if (this.held.get(h.id) !== h || !h.sink.writable) return undefined;
      const heads = await h.db.loadOpenJobPage(after, REBUILD_PAGE);
      if (heads.length === 0) return counts;
      after = heads[heads.length - 1].id;
      const jobs = heads.map((head) => headJob(h.id, head, intern));
      // Contents for the page's first jobs that fit (its metadata counted first): in id order,
      // so the jobs due first are the ones already in memory.
      let room = engine.budget.room - heads.length * JOB_METADATA_BYTES;
      const withContent: string[] = [];
      for (const head of heads) {
        room -= head.contentBytes + CONTENT_OVERHEAD_BYTES;
        if (room < 0) break;
        withContent.push(head.id);
      }
      if (withContent.length > 0) {
        const contents = await h.db.loadJobContents(withContent);
        for (const job of jobs) {
          const row = contents.get(job.id);
          if (row) job.content = jobContent(row);
        }
      }
      const now = this.now();
      const interrupted = jobs.filter((j) => j.state === 'executing');
      await h.writer.write(
        interrupted.map((j) => ({
          jobId: j.id,
          from: 'executing' as const,
          to: 'awaiting_retry' as const,
          attempt: j.attempt,
          at: new Date(now),
          error: INTERRUPTED_ERROR,
          nextRetryAt: new Date(now),
        })),
      );
      for (const j of interrupted) {
        j.state = 'awaiting_retry';
        j.nextRetryAt = now;
      }
      if (this.held.get(h.id) !== h || !h.sink.writable) return undefined;
      engine.attach(h.sink, jobs);
      counts.rebuilt += jobs.length;
      counts.withContent += withContent.length;
      counts.interrupted += interrupted.length;
    }
  }

  /**
   * Whether the metadata of the JobDB's open jobs fits this director's memory budget next to
   * the jobs it holds. A JobDB that does not fit is left for a director with room (or for this
   * one once its jobs are delivered): logged and counted once, counted again after
   * BUDGET_RECHECK_MS.
   */
  private async fitsBudget(entry: JobDbEntry): Promise<boolean> {
    const last = this.overBudget.get(entry.id);
    if (last && this.now() - last.at < BUDGET_RECHECK_MS) return false;
    const db = new JobDb({ url: this.options.mysqlUrl, database: entry.dsnRef, poolSize: 1 });
    let open: number;
    try {
      open = await db.countOpenJobs();
    } catch (error) {
      this.options.logger.warn({ ...errorFields(error), jobDb: entry.id }, 'could not count the open jobs of a JobDB');
      return false;
    } finally {
      await db.close().catch(() => undefined);
    }
    const { budget } = this.options.engine;
    if (budget.canHoldMetadataOf(open)) {
      this.overBudget.delete(entry.id);
      return true;
    }
    if (!last) {
      jobDbsRefused.inc({ reason: 'memory_budget' });
      this.options.logger.error(
        {
          jobDb: entry.id,
          state: entry.state,
          openJobs: open,
          metadataBytes: open * JOB_METADATA_BYTES,
          heldMetadataBytes: budget.metadataBytes,
          maxQueuedBytes: budget.maxBytes,
        },
        'not taking JobDB: the metadata of its open jobs does not fit DIRECTOR_MAX_QUEUED_BYTES next to the jobs held; left for a director with room',
      );
    }
    this.overBudget.set(entry.id, { at: this.now(), open });
    return false;
  }

  /**
   * A fenced write: a newer lease exists (unless this director sealed the JobDB itself). The
   * Consul lock may still show this session (the newer lease's holder lost it since, or never
   * had it): give it back, or nobody could take the JobDB until this director restarts.
   */
  private fenced(h: Held, error: FencedError): void {
    if (h.sealing) return;
    this.lose(h.id, 'fenced', error.message);
    if (h.lock.isHeld) {
      void h.lock
        .release()
        .catch((e: unknown) => this.options.logger.warn({ ...errorFields(e), jobDb: h.id }, 'lock release after fencing failed'));
    }
  }

  private lose(id: string, reason: string, detail: string): void {
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    lockLosses.inc({ reason });
    const error = new Error(`JobDB ${id} lock lost (${reason}): ${detail}`);
    h.writer.stop(error);
    h.calls.abort(error);
    this.options.engine.detach(id);
    this.options.logger.warn({ jobDb: id, reason, detail }, 'stopped executing JobDB');
    void h.db.close().catch(() => undefined);
    this.updateGauge();
    void this.reconcile();
  }

  /**
   * Marks a draining JobDB `drained` and releases it once no job is open. The decision is the
   * seal (JobDb.sealIfEmpty): an RPC insert that began before the switch to draining either
   * commits before it (the JobDB stays) or is fenced after it (answered 503 or stored in the
   * active JobDB, see insert), never stored in a JobDB already let go.
   */
  private async maybeDrained(h: Held, entry: JobDbEntry | undefined): Promise<void> {
    if (!entry || h.rebuilding || this.options.engine.openJobs(h.id) > 0) return;
    await h.writer.flush();
    h.sealing = true;
    let sealed: boolean;
    try {
      sealed = await h.db.sealIfEmpty(h.leaseId);
    } catch (error) {
      h.sealing = false;
      if (error instanceof FencedError) this.fenced(h, error);
      throw error;
    }
    h.sealing = sealed;
    if (!sealed) return;
    // A CAS that fails (record changed) is tried again on the next pass; the seal stays.
    if (!(await setJobDbState(this.options.consul, this.options.keys, entry, 'drained'))) return;
    this.options.logger.info({ jobDb: h.id }, 'JobDB drained: every job is final; releasing it');
    await this.release(h);
  }

  private async release(h: Held): Promise<void> {
    this.held.delete(h.id);
    await h.writer.flush();
    const error = new Error(`JobDB ${h.id} released`);
    h.writer.stop(error);
    // Only calls still running after a drain timeout at SIGTERM: they stay `executing` and the next holder retries them.
    h.calls.abort(error);
    this.options.engine.detach(h.id);
    await h.lock.release().catch((error: unknown) => this.options.logger.warn(errorFields(error), 'lock release failed'));
    await h.db.close().catch(() => undefined);
    this.updateGauge();
  }

  /**
   * Stores jobs in the active JobDB (fenced) and hands the new ones to the engine; those that
   * can start at once get their `executing` row in the same transaction (DeliveryEngine.admission).
   */
  async insert(jobs: NewJob[]): Promise<InsertAnswer> {
    for (let tries = 1; ; tries++) {
      const h = this.activeJobDb();
      if (!h) throw new NoActiveJobDbError();
      const stop = jobDbInsertDuration.startTimer();
      const admission = this.options.engine.admission(h.sink);
      const now = this.now();
      let result;
      try {
        result = await h.db.insertJobs(h.leaseId, jobs, now, admission.claim);
      } catch (error) {
        admission.cancel();
        if (error instanceof FencedError) {
          this.fenced(h, error);
          // Began before the switch to draining and fenced by the seal: nothing was stored there;
          // the JobDB active now takes the batch.
          if (h.sealing && tries === 1) continue;
        }
        throw error;
      }
      stop();
      admission.admit(result.inserted, result.startedIds, now);
      return { stored: result.inserted.length, duplicates: result.duplicates, rejected: result.rejected, results: result.results };
    }
  }

  /** Graceful stop: flush writes, release every lock, destroy the session. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.watch?.end();
    await this.reconciling?.catch(() => undefined);
    for (const h of [...this.held.values()]) await this.release(h);
    await this.session?.destroy().catch((error: unknown) => this.options.logger.warn(errorFields(error), 'session destroy failed'));
  }

  /** Test hook (see Director.kill): stop everything without telling Consul. */
  kill(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.watch?.end();
    this.session?.pauseRenewals();
    for (const h of this.held.values()) h.writer.stop(new Error('killed'));
  }

  private updateGauge(): void {
    jobDbsHeld.reset();
    for (const h of this.held.values()) jobDbsHeld.inc({ state: h.state });
  }
}
