import { EventEmitter } from 'node:events';
import { errorFields, type Logger } from '@cdp/log';
import type { ConsulLock } from './lock';
import { ConsulSession, type SessionClient } from './session';

export interface LeaderElectionOptions {
  consul: SessionClient;
  /** The leader key, e.g. `cdp/leader/jobdb-manager`. */
  key: string;
  /** Session name, e.g. `jobdb-manager:<pod>`. */
  name: string;
  /** Value written into the key while leading (e.g. `{"pod":"<pod>"}`). */
  value: string;
  /** Session TTL in ms; a dead leader is replaced within TTL + lock delay. */
  ttlMs: number;
  /** Lock delay in ms: after the leader's session is invalidated, nobody can lead for this long. */
  lockDelayMs: number;
  /** How often a follower tries to take the key (and a lost session is recreated). */
  retryMs: number;
  logger: Logger;
}

export interface LeaderElectionEvents {
  elected: [];
  deposed: [reason: string];
}

/**
 * Leader election on one Consul key: a session (`behavior: release`, with lock delay) that
 * tries to acquire the key every `retryMs`. `isLeader` turns false the moment the session or
 * the key is seen lost. Callers act only after `confirm()`, which re-reads the key
 * consistently: a leader frozen past its TTL (SIGSTOP, a long pause) finds, once it runs again,
 * that the key no longer shows its session, even if its own timers have not noticed yet.
 */
export class LeaderElection extends EventEmitter<LeaderElectionEvents> {
  private session: ConsulSession | undefined;
  private lock: ConsulLock | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: LeaderElectionOptions) {
    super();
  }

  get isLeader(): boolean {
    return !this.stopped && this.lock?.isHeld === true && this.session?.state === 'active';
  }

  /** The leader's session (for further locks taken as leader), while leading. */
  get leaderSession(): ConsulSession | undefined {
    return this.isLeader ? this.session : undefined;
  }

  start(): void {
    this.schedule(0);
  }

  /** Tries once now (tests; also what the timer runs). */
  tryLead(): Promise<void> {
    this.attempt ??= this.tryOnce().finally(() => {
      this.attempt = undefined;
    });
    return this.attempt;
  }

  /**
   * True only when this process leads and a consistent read of the key shows its session.
   * Call before each action; a false answer deposes this process locally.
   */
  async confirm(): Promise<boolean> {
    const session = this.session;
    if (!this.isLeader || !session) return false;
    try {
      const entry = await this.options.consul.kv.get(this.options.key, { consistent: true, timeoutMs: session.requestTimeoutMs });
      if (entry?.Session === session.id && this.isLeader) return true;
      this.depose(`leader key ${this.options.key} shows ${entry?.Session ?? 'no session'}, not ${session.id}`);
      return false;
    } catch (error) {
      // Unknown: do not act on a guess, but do not give up the key either.
      this.options.logger.warn(errorFields(error), 'could not confirm leadership; skipping this action');
      return false;
    }
  }

  /** Releases the key (a standby takes over without lock delay) and destroys the session. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.attempt?.catch(() => undefined);
    const wasLeader = this.lock?.isHeld === true;
    this.lock = undefined;
    await this.session?.destroy().catch((error: unknown) => this.options.logger.warn(errorFields(error), 'leader session destroy failed'));
    if (wasLeader) this.emit('deposed', 'stopped');
  }

  /**
   * Test hook: as if the process froze (SIGSTOP) and just resumed before any of its timers or
   * watches ran: no renewals, the key no longer followed, `isLeader` unchanged.
   */
  freeze(): void {
    this.session?.pauseRenewals();
    this.lock?.pauseWatching();
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tryLead().finally(() => this.schedule(this.options.retryMs));
    }, delayMs);
    this.timer.unref();
  }

  private async tryOnce(): Promise<void> {
    if (this.stopped || this.isLeader) return;
    const { logger } = this.options;
    try {
      if (!this.session || this.session.state !== 'active') {
        this.session = await ConsulSession.create(this.options.consul, {
          name: this.options.name,
          ttl: `${this.options.ttlMs}ms`,
          lockDelay: `${this.options.lockDelayMs}ms`,
          behavior: 'release',
          logger: logger.child({ component: 'consul-lock' }),
        });
        if (this.stopped) {
          await this.session.destroy();
          return;
        }
      }
      const lock = await this.session.acquire(this.options.key, this.options.value);
      if (!lock || this.stopped) {
        await lock?.release();
        return;
      }
      this.lock = lock;
      lock.once('lost', (reason, detail) => this.depose(`${reason}: ${detail}`));
      logger.info({ key: this.options.key, session: this.session.id }, 'elected leader');
      this.emit('elected');
    } catch (error) {
      logger.warn(errorFields(error), 'leader election attempt failed; retrying');
    }
  }

  private depose(reason: string): void {
    const lock = this.lock;
    if (!lock) return;
    this.lock = undefined;
    this.options.logger.warn({ key: this.options.key, reason }, 'no longer leader');
    // A key that shows another session while ours lives: give our claim up for good.
    if (lock.isHeld) void lock.release().catch(() => undefined);
    this.emit('deposed', reason);
  }
}
