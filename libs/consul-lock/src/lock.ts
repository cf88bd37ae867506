import { EventEmitter } from 'node:events';
import type { ConsulWatch, KvEntry } from '@cdp/consul';
import { errorFields, type Logger } from '@cdp/log';
import type { SessionClient } from './session';

/**
 * - `session-lost`: the owning session was invalidated or could not be renewed in time.
 * - `key-deleted`: someone deleted the lock key.
 * - `session-changed`: the key is still there but no longer shows this session (released
 *   by someone else with our session id, or taken over).
 */
export type LockLostReason = 'session-lost' | 'key-deleted' | 'session-changed';

export interface ConsulLockEvents {
  lost: [reason: LockLostReason, detail: string];
}

export type LockState = 'held' | 'checking' | 'lost' | 'released';

/** What a lock needs from the session that took it (kept narrow to avoid an import cycle). */
export interface LockOwner {
  consul: SessionClient;
  sessionId: string;
  logger: Logger;
  requestTimeoutMs: number;
  watchWait: string;
  forget(lock: ConsulLock): void;
  /** False when the session no longer exists (the session then marks itself lost). */
  confirmAlive(): Promise<boolean>;
  sessionLostReason(): string | undefined;
}

/**
 * A lock key held by a session. It follows its key with blocking queries and emits `lost`
 * as soon as the key stops showing the session; `isHeld` turns false before the event, the
 * moment the change is seen. `lockIndex` is Consul's LockIndex at acquisition: the fencing
 * token to record with every write made under this lock.
 */
export class ConsulLock extends EventEmitter<ConsulLockEvents> {
  readonly lockIndex: number;
  /** ModifyIndex of the key right after acquisition. */
  readonly acquiredIndex: number;
  private stateValue: LockState = 'held';
  private lostReasonValue: LockLostReason | undefined;
  private watch: ConsulWatch<KvEntry | undefined> | undefined;

  constructor(
    private readonly owner: LockOwner,
    readonly key: string,
    /** Sent again on release, because a Consul release also overwrites the value. */
    private readonly value: Buffer,
    entry: KvEntry,
  ) {
    super();
    this.lockIndex = entry.LockIndex;
    this.acquiredIndex = entry.ModifyIndex;
  }

  get sessionId(): string {
    return this.owner.sessionId;
  }

  get isHeld(): boolean {
    return this.stateValue === 'held';
  }

  get state(): LockState {
    return this.stateValue;
  }

  get lostReason(): LockLostReason | undefined {
    return this.lostReasonValue;
  }

  /**
   * Gives the key back (PUT ?release) and stops watching. Resolves whether Consul still
   * showed this session as holder; false if the lock was already lost or released.
   * The lock counts as released locally even if the request fails (then it throws).
   */
  async release(): Promise<boolean> {
    if (this.stateValue !== 'held') return false;
    this.stateValue = 'released';
    this.stopWatching();
    this.owner.forget(this);
    const ok = await this.owner.consul.kv.set(this.key, this.value, {
      release: this.owner.sessionId,
      timeoutMs: this.owner.requestTimeoutMs,
    });
    this.owner.logger.info({ session: this.owner.sessionId, key: this.key, released: ok }, 'lock released');
    return ok;
  }

  /** Test and chaos hook: stop following the key, as if the process froze (with ConsulSession.pauseRenewals). */
  pauseWatching(): void {
    this.stopWatching();
  }

  /** Called by the session; also the end of every loss path. Idempotent. */
  markLost(reason: LockLostReason, detail: string): void {
    if (this.stateValue === 'lost' || this.stateValue === 'released') return;
    this.stateValue = 'lost';
    this.lostReasonValue = reason;
    this.stopWatching();
    this.owner.forget(this);
    this.owner.logger.warn({ session: this.owner.sessionId, key: this.key, lockIndex: this.lockIndex, reason, detail }, 'consul lock lost');
    this.emit('lost', reason, detail);
  }

  /** Started by the session right after acquisition. */
  startWatching(): void {
    if (this.stateValue !== 'held') return;
    const { consul } = this.owner;
    // Quick reconnects: a long backoff would delay noticing a loss while Consul is back.
    const watch = consul.watch(consul.kv.entry(this.key), { wait: this.owner.watchWait, backoffFactorMs: 50, backoffMaxMs: 2_000 });
    this.watch = watch;
    watch.on('change', (data) => this.onChange(data));
    watch.on('error', (error) => {
      this.owner.logger.debug({ key: this.key, ...errorFields(error) }, 'lock watch error; retrying');
    });
  }

  private onChange(data: KvEntry | undefined): void {
    if (this.stateValue !== 'held') return;
    if (data !== undefined && data.Session === this.owner.sessionId) return;
    // Stop trusting the lock right away; the reason may need one more request.
    this.stateValue = 'checking';
    this.stopWatching();
    const observed: LockLostReason = data === undefined ? 'key-deleted' : 'session-changed';
    const detail =
      data === undefined
        ? `key ${this.key} was deleted`
        : `key ${this.key} now shows session ${data.Session ?? '(none)'} instead of ${this.owner.sessionId}`;
    void this.owner.confirmAlive().then((alive) => {
      // If the session is gone, the session has already marked this lock 'session-lost'.
      const sessionReason = this.owner.sessionLostReason();
      if (!alive || sessionReason !== undefined) this.markLost('session-lost', sessionReason ?? detail);
      else this.markLost(observed, detail);
    });
  }

  private stopWatching(): void {
    const watch = this.watch;
    this.watch = undefined;
    watch?.end();
  }
}
