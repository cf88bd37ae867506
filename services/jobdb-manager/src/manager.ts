import crypto from 'node:crypto';
import type { ConsulSession, LeaderElection } from '@cdp/consul-lock';
import { isDirectorSession, type ConsulClient, type ConsulKeys, type JobDbEntry, type JobDbRecord, type LockHolder } from '@cdp/consul';
import {
  countOpenJobsIn,
  createJobDbDatabase,
  dropJobDbDatabase,
  jobDbUsage,
  listJobDbs,
  oldestOpenJobReceivedAt,
  registerJobDb,
  setJobDbState,
} from '@cdp/jobdb';
import { errorFields, type Logger } from '@cdp/log';
import type { ManagerConfig } from './config';
import * as m from './metrics';

export type ManagerSettings = Pick<
  ManagerConfig,
  | 'MYSQL_URL'
  | 'POD_NAME'
  | 'JOBDB_MANAGER_INTERVAL_MS'
  | 'JOBDB_SPARE'
  | 'JOBDB_ROTATION_PERIOD_MS'
  | 'JOBDB_MAX_JOBS'
  | 'JOBDB_MAX_BYTES'
  | 'JOBDB_RETRY_WINDOW_MS'
  | 'JOBDB_ORPHAN_ALERT_MS'
  | 'JOBDB_DATABASE_PREFIX'
  | 'JOBDB_STATS_INTERVAL_MS'
>;

export interface ManagerDeps {
  consul: ConsulClient;
  keys: ConsulKeys;
  leader: LeaderElection;
  logger: Logger;
  now?: () => number;
}

/** Leadership was lost (or could not be confirmed) before an action: the pass stops there. */
class NotLeaderError extends Error {
  constructor(action: string) {
    super(`not (or no longer confirmed) leader before: ${action}`);
    this.name = 'NotLeaderError';
  }
}

/** MySQL/MariaDB "Unknown database": a drop that already happened. */
const ER_BAD_DB_ERROR = 1049;

/** directors × (1 + ⌈retry window / rotation period⌉) + spare (DESIGN.md "JobDB lifecycle"). */
export function jobDbBound(directors: number, retryWindowMs: number, rotationPeriodMs: number, spare: number): number {
  return directors * (1 + Math.ceil(retryWindowMs / rotationPeriodMs)) + spare;
}

/**
 * The JobDB lifecycle (DESIGN.md "JobDB lifecycle"), acted on by the leader only: one pass every
 * JOBDB_MANAGER_INTERVAL_MS drops drained JobDBs, moves orphaned and due `active` JobDBs to
 * `draining`, keeps live directors + spare `active` ones, and retires unused spares above that.
 * Every action is preceded by `leader.confirm()`; Consul writes are check-and-set on the record.
 */
export class JobDbManager {
  private timer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** JobDB id → when it was first seen without a live holder (draining, or active with a lease). */
  private readonly unheldSince = new Map<string, number>();
  /** Ids already reported as orphaned too long (one log line each). */
  private readonly reported = new Set<string>();
  private readonly now: () => number;

  constructor(
    private readonly settings: ManagerSettings,
    private readonly deps: ManagerDeps,
  ) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.runPass(), this.settings.JOBDB_MANAGER_INTERVAL_MS);
    this.timer.unref();
    this.statsTimer = setInterval(() => void this.updateOldestPending(), this.settings.JOBDB_STATS_INTERVAL_MS);
    this.statsTimer.unref();
    this.deps.leader.on('elected', () => void this.runPass());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.statsTimer);
    await this.running?.catch(() => undefined);
  }

  /** One pass now (coalesced with a running one). Nothing happens unless this replica leads. */
  runPass(): Promise<void> {
    this.running ??= this.pass()
      .catch((error: unknown) => {
        if (error instanceof NotLeaderError) {
          this.deps.logger.warn({ reason: error.message }, 'pass stopped: not leader');
          return;
        }
        m.passErrors.inc();
        this.deps.logger.warn(errorFields(error), 'jobdb-manager pass failed; retrying next period');
      })
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(): Promise<void> {
    const { leader } = this.deps;
    m.isLeader.set(leader.isLeader ? 1 : 0);
    if (this.stopped || !leader.isLeader) return;
    const s = this.settings;
    const entries = await listJobDbs(this.deps.consul, this.deps.keys);
    const directors = await this.liveDirectors();
    this.observe(entries, directors.size);

    for (const e of entries) if (e.state === 'drained' && e.holder === undefined) await this.drop(e, 'drained');

    const unheldActive = entries.filter((e) => e.state === 'active' && e.holder === undefined);
    const usage = new Map<string, Awaited<ReturnType<typeof jobDbUsage>>>();
    for (const e of entries.filter((x) => x.state === 'active')) usage.set(e.id, await jobDbUsage(s.MYSQL_URL, e.dsnRef));

    // Orphans: an active JobDB some director held (it has a lease) and none holds now.
    const orphans = unheldActive.filter((e) => usage.get(e.id)!.leases > 0);
    const rotate: Array<{ entry: JobDbEntry; reason: string }> = [];
    for (const e of entries) {
      if (e.state !== 'active' || e.holder === undefined) continue;
      const reason = this.rotationReason(usage.get(e.id)!);
      if (reason) rotate.push({ entry: e, reason });
    }
    const spares = unheldActive.filter((e) => usage.get(e.id)!.leases === 0);
    const staying = entries.filter((e) => e.state === 'active').length - orphans.length - rotate.length;
    const wanted = directors.size + s.JOBDB_SPARE;

    // Replacements first, so a holder whose JobDB rotates finds a fresh one at once.
    for (let i = staying; i < wanted; i++) await this.provision();
    for (const e of orphans) {
      if (await this.markDraining(e, 'orphan')) {
        m.orphansMarked.inc();
        this.deps.logger.warn({ jobDb: e.id }, 'active JobDB without a live holder: marked draining so a live director adopts it');
      }
    }
    for (const { entry, reason } of rotate) {
      if (await this.markDraining(entry, `rotation (${reason})`)) m.rotations.inc({ reason });
    }
    // Directors went away: unused spares above the need are dropped (newest first kept).
    const excess = staying - wanted;
    for (const e of spares.slice(0, Math.max(0, excess))) await this.drop(e, 'spare');
  }

  private rotationReason(usage: { firstLeaseAt: Date | null; approxJobs: number; bytes: number }): string | undefined {
    const s = this.settings;
    if (usage.firstLeaseAt !== null && this.now() - usage.firstLeaseAt.getTime() >= s.JOBDB_ROTATION_PERIOD_MS) return 'age';
    if (s.JOBDB_MAX_JOBS > 0 && usage.approxJobs > s.JOBDB_MAX_JOBS) return 'jobs';
    if (s.JOBDB_MAX_BYTES > 0 && usage.bytes > s.JOBDB_MAX_BYTES) return 'bytes';
    return undefined;
  }

  /** Gauges, and the orphaned-too-long alert. */
  private observe(entries: JobDbEntry[], directors: number): void {
    const s = this.settings;
    m.liveDirectors.set(directors);
    m.jobDbBound.set(jobDbBound(directors, s.JOBDB_RETRY_WINDOW_MS, s.JOBDB_ROTATION_PERIOD_MS, s.JOBDB_SPARE));
    m.jobDbs.reset();
    for (const state of ['active', 'draining', 'drained']) m.jobDbs.set({ state }, entries.filter((e) => e.state === state).length);
    const now = this.now();
    const unheld = new Set(entries.filter((e) => e.holder === undefined && e.state === 'draining').map((e) => e.id));
    for (const id of [...this.unheldSince.keys()]) {
      if (!unheld.has(id)) {
        this.unheldSince.delete(id);
        this.reported.delete(id);
      }
    }
    let long = 0;
    for (const id of unheld) {
      const since = this.unheldSince.get(id) ?? now;
      this.unheldSince.set(id, since);
      if (now - since < s.JOBDB_ORPHAN_ALERT_MS) continue;
      long += 1;
      if (!this.reported.has(id)) {
        this.reported.add(id);
        this.deps.logger.error(
          { jobDb: id, orphanedMs: now - since },
          'JobDB without a live holder for longer than JOBDB_ORPHAN_ALERT_MS: its retries are not running',
        );
      }
    }
    m.orphaned.set(long);
  }

  private async liveDirectors(): Promise<Set<string>> {
    const list = await this.deps.consul.session.list();
    return new Set(list.filter((x) => isDirectorSession(x.Name)).map((x) => x.ID));
  }

  private async confirm(action: string): Promise<ConsulSession> {
    if (this.stopped || !(await this.deps.leader.confirm())) throw new NotLeaderError(action);
    const session = this.deps.leader.leaderSession;
    if (!session) throw new NotLeaderError(action);
    return session;
  }

  private async provision(): Promise<void> {
    const s = this.settings;
    // Time-ordered and unique: base36 milliseconds plus random bytes.
    const id = `${this.now().toString(36)}${crypto.randomBytes(3).toString('hex')}`;
    const database = `${s.JOBDB_DATABASE_PREFIX}${id}`;
    await this.confirm(`provision ${id}`);
    const createdAt = new Date(this.now());
    await createJobDbDatabase(s.MYSQL_URL, database, id, createdAt);
    try {
      await this.confirm(`register ${id}`);
      const record: JobDbRecord = { state: 'active', dsnRef: database, createdAt: createdAt.toISOString(), provisionedBy: s.POD_NAME };
      await registerJobDb(this.deps.consul, this.deps.keys, id, record);
    } catch (error) {
      // Never registered: nothing can use it.
      await dropJobDbDatabase(s.MYSQL_URL, database).catch(() => undefined);
      throw error;
    }
    m.provisioned.inc();
    this.deps.logger.info({ jobDb: id, database }, 'JobDB provisioned (active)');
  }

  private async markDraining(entry: JobDbEntry, why: string): Promise<boolean> {
    await this.confirm(`mark ${entry.id} draining`);
    const ok = await setJobDbState(this.deps.consul, this.deps.keys, entry, 'draining');
    if (ok) this.deps.logger.info({ jobDb: entry.id, why }, 'JobDB marked draining');
    else this.deps.logger.info({ jobDb: entry.id }, 'JobDB record changed since read; decided again next pass');
    return ok;
  }

  /**
   * Drops a drained JobDB (or an unused spare): takes its lock so no director can take it,
   * checks that no job is open (a spare: that no director ever took it), DROPs the database and
   * deletes its keys. History (delivery stats) lives in cdp_control and stays.
   */
  private async drop(entry: JobDbEntry, kind: 'drained' | 'spare'): Promise<void> {
    const s = this.settings;
    const { logger } = this.deps;
    const session = await this.confirm(`lock ${entry.id} to drop it`);
    const lock = await session.acquire(this.deps.keys.jobDbLock(entry.id), JSON.stringify({ pod: s.POD_NAME } satisfies LockHolder));
    // Held by a director, or inside a lock delay: next pass.
    if (!lock) return;
    try {
      const blocker = await this.dropBlocker(entry, kind);
      if (blocker !== undefined) {
        if (kind === 'drained') {
          m.dropsRefused.inc();
          logger.error(
            { jobDb: entry.id, reason: blocker },
            'drained JobDB still holds work: not dropped, moved back to draining for a director to finish',
          );
          await this.markDraining(entry, 'drained but not empty');
        }
        return;
      }
      await this.confirm(`drop ${entry.id}`);
      await dropJobDbDatabase(s.MYSQL_URL, entry.dsnRef);
      await this.deps.consul.kv.delete(this.deps.keys.jobDb(entry.id), { cas: entry.modifyIndex });
      await lock.release();
      await this.deps.consul.kv.delete(this.deps.keys.jobDbLock(entry.id));
      m.drops.inc({ kind });
      logger.info({ jobDb: entry.id, database: entry.dsnRef, kind }, 'JobDB dropped');
    } finally {
      if (lock.isHeld) await lock.release().catch(() => undefined);
    }
  }

  /** Why `entry` must not be dropped, or undefined. */
  private async dropBlocker(entry: JobDbEntry, kind: 'drained' | 'spare'): Promise<string | undefined> {
    const url = this.settings.MYSQL_URL;
    try {
      if (kind === 'spare') {
        const usage = await jobDbUsage(url, entry.dsnRef);
        return usage.leases > 0 ? 'a director took it meanwhile' : undefined;
      }
      const open = await countOpenJobsIn(url, entry.dsnRef);
      return open > 0 ? `${open} non-final jobs` : undefined;
    } catch (error) {
      // Dropped by an earlier pass that stopped before deleting the keys.
      if ((error as { errno?: number }).errno === ER_BAD_DB_ERROR) return undefined;
      throw error;
    }
  }

  /** The oldest job without a final state across registered JobDBs (active and draining). */
  private async updateOldestPending(): Promise<void> {
    if (!this.deps.leader.isLeader) return;
    try {
      const entries = await listJobDbs(this.deps.consul, this.deps.keys);
      let oldest: number | undefined;
      for (const e of entries) {
        if (e.state === 'drained') continue;
        const at = await oldestOpenJobReceivedAt(this.settings.MYSQL_URL, e.dsnRef);
        if (at !== null && (oldest === undefined || at.getTime() < oldest)) oldest = at.getTime();
      }
      m.oldestPendingJobAge.set(oldest === undefined ? 0 : Math.max(0, (this.now() - oldest) / 1_000));
    } catch (error) {
      this.deps.logger.warn(errorFields(error), 'oldest pending job scan failed');
    }
  }
}
