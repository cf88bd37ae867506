import { EventEmitter } from 'node:events';
import { durationToMs, type ConsulClient, type SessionBehavior } from '@cdp/consul';
import { createLogger, errorFields, type Logger } from '@cdp/log';
import { ConsulLock, type LockOwner } from './lock';

/** The parts of the client a session and its locks use (a unit test passes a fake). */
export type SessionClient = Pick<ConsulClient, 'kv' | 'session' | 'watch'>;

export interface ConsulSessionOptions {
  /** Session name; live directors are found by it (e.g. `director:<pod>`). */
  name: string;
  /** Go duration; default "10s" (Consul's minimum). Consul reaps the session after TTL..2xTTL without renewal. */
  ttl?: string;
  /** Go duration; keys released by an invalidation refuse new holders this long. Omitted: Consul's default (15s). */
  lockDelay?: string;
  /** What Consul does to held keys when the session is invalidated; default 'release'. */
  behavior?: SessionBehavior;
  /** Renewal period; default TTL / 2. */
  renewIntervalMs?: number;
  /** Timeout of each Consul request made by the session and its locks; default min(TTL / 2, 10 s). */
  requestTimeoutMs?: number;
  /** Blocking-query wait of lock watches (Go duration); default "30s". */
  watchWait?: string;
  logger?: Logger;
}

export type SessionState = 'active' | 'lost' | 'destroyed';

export interface ConsulSessionEvents {
  /** The session can no longer be trusted; every lock it held has emitted `lost` first. */
  lost: [reason: string];
}

/**
 * A Consul TTL session that renews itself. It is *lost* when a renewal answers 404 (Consul
 * invalidated it), when no renewal has succeeded for a whole TTL (Consul may have reaped it
 * by now, so nothing held under it can be trusted), or when a lock watch sees the session
 * gone. Lost is final: create a new session to continue.
 */
export class ConsulSession extends EventEmitter<ConsulSessionEvents> {
  readonly ttlMs: number;
  private stateValue: SessionState = 'active';
  private lostReasonValue: string | undefined;
  private readonly locks = new Map<string, ConsulLock>();
  private renewTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** When the last successful renewal (or the creation) was sent: Consul reset its timer after that. */
  private lastConfirmedAt: number;
  private paused = false;
  private readonly renewIntervalMs: number;
  readonly requestTimeoutMs: number;

  private constructor(
    private readonly consul: SessionClient,
    readonly id: string,
    readonly name: string,
    readonly ttl: string,
    private readonly options: ConsulSessionOptions,
    private readonly logger: Logger,
    createdAt: number,
  ) {
    super();
    this.ttlMs = durationToMs(ttl);
    this.renewIntervalMs = options.renewIntervalMs ?? Math.max(1, Math.floor(this.ttlMs / 2));
    this.requestTimeoutMs = options.requestTimeoutMs ?? Math.min(Math.max(1, Math.floor(this.ttlMs / 2)), 10_000);
    this.lastConfirmedAt = createdAt;
  }

  /** Creates the session in Consul and starts renewing it. */
  static async create(consul: SessionClient, options: ConsulSessionOptions): Promise<ConsulSession> {
    const ttl = options.ttl ?? '10s';
    const ttlMs = durationToMs(ttl);
    if (!(ttlMs > 0)) throw new Error(`session TTL must be > 0 (got "${ttl}"): a session without TTL never expires`);
    const logger = options.logger ?? createLogger({ name: 'consul-lock' });
    const startedAt = Date.now();
    const ID = await consul.session.create(
      { name: options.name, ttl, behavior: options.behavior ?? 'release', lockDelay: options.lockDelay },
      { timeoutMs: options.requestTimeoutMs ?? Math.min(Math.max(1, Math.floor(ttlMs / 2)), 10_000) },
    );
    const session = new ConsulSession(consul, ID, options.name, ttl, options, logger, startedAt);
    session.scheduleRenew(session.renewIntervalMs);
    session.armDeadline();
    logger.info({ session: ID, sessionName: options.name, ttl }, 'consul session created');
    return session;
  }

  get state(): SessionState {
    return this.stateValue;
  }

  get isLost(): boolean {
    return this.stateValue === 'lost';
  }

  get lostReason(): string | undefined {
    return this.lostReasonValue;
  }

  /** Locks currently held through this session. */
  get heldLocks(): ConsulLock[] {
    return [...this.locks.values()].filter((l) => l.isHeld);
  }

  /**
   * Tries to take `key` (PUT ?acquire). Resolves the held lock, or null when another
   * session holds the key or it is inside a lock-delay window. Throws when the session is
   * not active or Consul fails.
   */
  async acquire(key: string, value: string | Buffer = ''): Promise<ConsulLock | null> {
    this.assertActive();
    const existing = this.locks.get(key);
    if (existing?.isHeld) return existing;

    if (!(await this.consul.kv.set(key, value, { acquire: this.id, timeoutMs: this.requestTimeoutMs }))) return null;

    // LockIndex is only known by reading the key back; it is the fencing token.
    const entry = await this.consul.kv.get(key, { consistent: true, timeoutMs: this.requestTimeoutMs });
    if (!entry || entry.Session !== this.id) {
      this.logger.warn({ session: this.id, key }, 'lock acquired but gone before it could be read back');
      return null;
    }
    if (this.stateValue !== 'active') {
      // Lost while acquiring: give the key back rather than hold it under a dead session.
      await this.releaseQuietly(key, value);
      return null;
    }
    const owner: LockOwner = {
      consul: this.consul,
      sessionId: this.id,
      logger: this.logger,
      requestTimeoutMs: this.requestTimeoutMs,
      watchWait: this.options.watchWait ?? '30s',
      forget: (lock) => {
        if (this.locks.get(lock.key) === lock) this.locks.delete(lock.key);
      },
      confirmAlive: () => this.confirmAlive(),
      sessionLostReason: () => (this.stateValue === 'lost' ? this.lostReasonValue : undefined),
    };
    const lock = new ConsulLock(owner, key, typeof value === 'string' ? Buffer.from(value) : value, entry);
    this.locks.set(key, lock);
    lock.startWatching();
    this.logger.info({ session: this.id, key, lockIndex: entry.LockIndex }, 'lock acquired');
    return lock;
  }

  /**
   * Releases every held lock (so the next holder needs no lock-delay), stops renewing and
   * destroys the session. Idempotent; no `lost` events are emitted.
   */
  async destroy(): Promise<void> {
    if (this.stateValue === 'destroyed') return;
    this.stateValue = 'destroyed';
    this.stopTimers();
    const locks = [...this.locks.values()];
    this.locks.clear();
    await Promise.all(
      locks.map((lock) =>
        lock.release().catch((error: unknown) => {
          this.logger.warn({ ...errorFields(error), key: lock.key }, 'lock release failed during session destroy');
        }),
      ),
    );
    await this.consul.session.destroy(this.id, { timeoutMs: this.requestTimeoutMs });
    this.logger.info({ session: this.id, sessionName: this.name }, 'consul session destroyed');
  }

  /**
   * Test and chaos hook: stop sending renewals (and the local overdue check) as if the
   * process froze, so Consul expires the session and its locks' watches report it.
   */
  pauseRenewals(): void {
    this.paused = true;
    this.stopTimers();
  }

  /** Undo `pauseRenewals`; renews at once (a 404 then makes the session lost). */
  resumeRenewals(): void {
    if (!this.paused || this.stateValue !== 'active') return;
    this.paused = false;
    this.armDeadline();
    this.scheduleRenew(0);
  }

  // ------------------------------------------------------------------ renewal

  private scheduleRenew(delayMs: number): void {
    clearTimeout(this.renewTimer);
    if (this.stateValue !== 'active' || this.paused) return;
    this.renewTimer = setTimeout(() => void this.renewOnce(), delayMs);
    this.renewTimer.unref();
  }

  private async renewOnce(): Promise<void> {
    const sentAt = Date.now();
    try {
      const renewed = await this.consul.session.renew(this.id, { timeoutMs: this.requestTimeoutMs });
      if (this.stateValue !== 'active' || this.paused) return;
      if (!renewed) {
        this.markLost(`session ${this.id} not found on renew: Consul invalidated it (TTL expired, destroyed or check failed)`, false);
        return;
      }
      this.lastConfirmedAt = sentAt;
      this.armDeadline();
      this.scheduleRenew(this.renewIntervalMs);
    } catch (error) {
      if (this.stateValue !== 'active' || this.paused) return;
      const silentFor = Date.now() - this.lastConfirmedAt;
      this.logger.warn(
        { session: this.id, ...errorFields(error), msSinceConfirmed: silentFor, ttlMs: this.ttlMs },
        'session renew failed; retrying',
      );
      // Retry well inside the TTL; the deadline timer decides when it is too late.
      this.scheduleRenew(Math.min(this.renewIntervalMs, Math.max(50, Math.floor(this.ttlMs / 10))));
    }
  }

  /** Fires when a whole TTL has passed since the last confirmed renewal, even if a request hangs. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    if (this.stateValue !== 'active' || this.paused) return;
    const remaining = this.lastConfirmedAt + this.ttlMs - Date.now();
    this.deadlineTimer = setTimeout(
      () => {
        this.markLost(`no successful renewal for a whole TTL (${this.ttl}); Consul may have expired the session`, true);
      },
      Math.max(0, remaining),
    );
    this.deadlineTimer.unref();
  }

  private stopTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.deadlineTimer);
    this.renewTimer = undefined;
    this.deadlineTimer = undefined;
  }

  /**
   * A lock saw its key lose this session: ask Consul whether the session still exists.
   * Returns false (and makes the session lost) when it does not.
   */
  private async confirmAlive(): Promise<boolean> {
    if (this.stateValue === 'lost') return false;
    try {
      const info = await this.consul.session.info(this.id, { consistent: true, timeoutMs: this.requestTimeoutMs });
      if (info === undefined) {
        if (this.stateValue === 'active') this.markLost(`session ${this.id} no longer exists in Consul (seen by a lock watch)`, false);
        return false;
      }
      return true;
    } catch (error) {
      this.logger.warn({ session: this.id, ...errorFields(error) }, 'could not check session after a lock change');
      return true;
    }
  }

  private markLost(reason: string, destroyOnServer: boolean): void {
    if (this.stateValue !== 'active') return;
    this.stateValue = 'lost';
    this.lostReasonValue = reason;
    this.stopTimers();
    this.logger.warn({ session: this.id, sessionName: this.name, reason, locks: [...this.locks.keys()] }, 'consul session lost');
    const locks = [...this.locks.values()];
    this.locks.clear();
    for (const lock of locks) lock.markLost('session-lost', reason);
    this.emit('lost', reason);
    if (destroyOnServer) {
      // Consul may still hold the session (it waits up to 2 x TTL): end it so its keys free up.
      this.consul.session.destroy(this.id, { timeoutMs: this.requestTimeoutMs }).catch((error: unknown) => {
        this.logger.debug({ session: this.id, ...errorFields(error) }, 'destroy of lost session failed');
      });
    }
  }

  private assertActive(): void {
    if (this.stateValue !== 'active') {
      throw new Error(`consul session ${this.id} is ${this.stateValue}${this.lostReasonValue ? `: ${this.lostReasonValue}` : ''}`);
    }
  }

  private async releaseQuietly(key: string, value: string | Buffer): Promise<void> {
    try {
      await this.consul.kv.set(key, value, { release: this.id, timeoutMs: this.requestTimeoutMs });
    } catch (error) {
      this.logger.debug({ key, ...errorFields(error) }, 'release after lost acquire failed');
    }
  }
}
