import { randomUUID } from 'node:crypto';
import type { Logger } from '@cdp/log';
import { formatGoDuration, GoDurationError, nanosToMs, parseGoDuration } from './duration';
import { rpcError } from './errors';

/** Consul's fixed bounds (structs.SessionTTLMax, structs.MaxLockDelay). */
export const SESSION_TTL_MAX_NS = 24n * 3600n * 1_000_000_000n;
export const MAX_LOCK_DELAY_NS = 60n * 1_000_000_000n;
/** The only check our single node has; sessions bind to it by default. */
export const SERF_CHECK_ID = 'serfHealth';

export type Table = 'kvs' | 'sessions';
export type SessionBehavior = 'release' | 'delete';

export interface ServiceCheck {
  ID: string;
  Namespace?: string;
}

export interface Session {
  id: string;
  name: string;
  node: string;
  lockDelayNs: bigint;
  behavior: SessionBehavior;
  ttl: string;
  nodeChecks: string[] | null;
  serviceChecks: ServiceCheck[] | null;
  createIndex: number;
  modifyIndex: number;
}

export interface KvEntry {
  key: string;
  value: Buffer | null;
  flags: bigint;
  /** '' when unlocked. */
  session: string;
  lockIndex: number;
  createIndex: number;
  modifyIndex: number;
}

/** Already-decoded session/create body; `undefined` means "field absent". */
export interface SessionCreateRequest {
  name?: string;
  node?: string;
  lockDelayNs?: bigint;
  behavior?: string;
  ttl?: string;
  /** Present (even empty) replaces the default serfHealth check, as in Consul. */
  checks?: string[];
  nodeChecks?: string[];
  serviceChecks?: ServiceCheck[];
}

export type KvPutOp =
  { kind: 'set' } | { kind: 'cas'; index: number } | { kind: 'lock'; session: string } | { kind: 'unlock'; session: string };

export interface StoreOptions {
  nodeName: string;
  minTtlMs: number;
  ttlMultiplier: number;
  defaultLockDelayMs: number;
  logger: Logger;
  now?: () => number;
}

type Waiter = () => void;

/**
 * In-memory equivalent of Consul's state store for sessions and KV: one raft-like index
 * shared by every write, per-table indexes for blocking queries, tombstones so a prefix
 * index never moves backwards on delete, TTL timers and lock-delay windows.
 */
export class ConsulStore {
  private raftIndex = 1;
  private readonly tableIndex: Record<Table, number> = { kvs: 0, sessions: 0 };
  private readonly kvs = new Map<string, KvEntry>();
  private readonly tombstones = new Map<string, number>();
  private readonly lockDelays = new Map<string, number>();
  private readonly sessions = new Map<string, Session>();
  private readonly ttlTimers = new Map<string, NodeJS.Timeout>();
  private readonly waiters: Record<Table, Set<Waiter>> = { kvs: new Set(), sessions: new Set() };
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: StoreOptions) {
    this.now = options.now ?? Date.now;
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  /** Index to report for a table; Consul never reports 0 (clients treat it as a bug). */
  index(table: Table): number {
    return Math.max(1, this.tableIndex[table]);
  }

  // ---------------------------------------------------------------- sessions

  createSession(req: SessionCreateRequest): Session {
    const node = req.node ?? this.options.nodeName;
    if (node === '') throw rpcError('Must provide Node');

    let behavior: SessionBehavior;
    switch (req.behavior ?? '') {
      case '':
      case 'release':
        behavior = 'release';
        break;
      case 'delete':
        behavior = 'delete';
        break;
      default:
        throw rpcError(`Invalid Behavior setting '${req.behavior}'`);
    }

    const ttl = req.ttl ?? '';
    let ttlNs = 0n;
    if (ttl !== '') {
      try {
        ttlNs = parseGoDuration(ttl);
      } catch (error) {
        throw rpcError(`Session TTL '${ttl}' invalid: ${(error as GoDurationError).message}`);
      }
      const minNs = BigInt(this.options.minTtlMs) * 1_000_000n;
      if (ttlNs !== 0n && (ttlNs < minNs || ttlNs > SESSION_TTL_MAX_NS)) {
        throw rpcError(
          `Invalid Session TTL '${ttlNs}', must be between [${formatGoDuration(minNs)}=${formatGoDuration(SESSION_TTL_MAX_NS)}]`,
        );
      }
    }

    if (node !== this.options.nodeName) throw rpcError('Missing node registration');
    const nodeChecks = dedupe([...(req.checks ?? [SERF_CHECK_ID]), ...(req.nodeChecks ?? [])]);
    for (const check of nodeChecks) {
      if (check !== SERF_CHECK_ID) throw rpcError(`Missing check '${check}' registration`);
    }
    // This node runs no services, so no service check can exist.
    for (const check of req.serviceChecks ?? []) throw rpcError(`Missing check '${check.ID}' registration`);

    const idx = this.raftIndex + 1;
    const session: Session = {
      id: this.newSessionId(),
      name: req.name ?? '',
      node,
      lockDelayNs: req.lockDelayNs ?? BigInt(this.options.defaultLockDelayMs) * 1_000_000n,
      behavior,
      ttl,
      nodeChecks: nodeChecks.length > 0 ? nodeChecks : null,
      serviceChecks: req.serviceChecks && req.serviceChecks.length > 0 ? req.serviceChecks : null,
      createIndex: idx,
      modifyIndex: idx,
    };
    this.sessions.set(session.id, session);
    this.commit(idx, ['sessions']);
    if (ttlNs > 0n) this.resetTimer(session.id, ttlNs);
    return session;
  }

  /** Resets the TTL timer; `undefined` when the session does not exist (HTTP 404). */
  renewSession(id: string): Session | undefined {
    checkUuid(id);
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.ttl !== '') {
      const ttlNs = parseGoDuration(session.ttl);
      if (ttlNs > 0n) this.resetTimer(id, ttlNs);
    }
    return session;
  }

  /** Idempotent, like Consul's destroy. */
  destroySession(id: string): void {
    checkUuid(id);
    this.invalidateSession(id, 'destroyed');
  }

  getSession(id: string): { index: number; session?: Session } {
    checkUuid(id);
    return { index: this.index('sessions'), session: this.sessions.get(id) };
  }

  listSessions(node?: string): { index: number; sessions: Session[] } {
    const all = [...this.sessions.values()].filter((s) => node === undefined || s.node === node);
    all.sort((a, b) => compareBytes(a.id, b.id));
    return { index: this.index('sessions'), sessions: all };
  }

  private newSessionId(): string {
    for (;;) {
      const id = randomUUID();
      if (!this.sessions.has(id)) return id;
    }
  }

  private resetTimer(id: string, ttlNs: bigint): void {
    const previous = this.ttlTimers.get(id);
    if (previous) clearTimeout(previous);
    if (this.closed) return;
    // Consul only promises "not before TTL": its timer runs TTL x multiplier.
    const ms = Math.max(1, Math.ceil(nanosToMs(ttlNs) * this.options.ttlMultiplier));
    const timer = setTimeout(() => {
      this.ttlTimers.delete(id);
      if (this.invalidateSession(id, 'ttl-expired')) {
        this.options.logger.debug({ session: id, ttlMs: ms }, 'session TTL expired');
      }
    }, ms);
    timer.unref();
    this.ttlTimers.set(id, timer);
  }

  /** Deletes the session and releases or deletes its keys, starting their lock-delay. */
  private invalidateSession(id: string, reason: string): boolean {
    const session = this.sessions.get(id);
    const timer = this.ttlTimers.get(id);
    if (timer) {
      clearTimeout(timer);
      this.ttlTimers.delete(id);
    }
    if (!session) return false;

    const idx = this.raftIndex + 1;
    this.sessions.delete(id);
    const delayNs = session.lockDelayNs > MAX_LOCK_DELAY_NS ? MAX_LOCK_DELAY_NS : session.lockDelayNs;
    const now = this.now();
    let kvChanged = false;
    for (const entry of [...this.kvs.values()]) {
      if (entry.session !== id) continue;
      if (session.behavior === 'release') {
        kvChanged = this.writeEntry(idx, { ...entry, session: '' }, true) || kvChanged;
      } else {
        this.deleteEntry(idx, entry.key);
        kvChanged = true;
      }
      if (delayNs > 0n) this.lockDelays.set(entry.key, now + nanosToMs(delayNs));
    }
    this.commit(idx, kvChanged ? ['sessions', 'kvs'] : ['sessions']);
    this.options.logger.debug({ session: id, reason, behavior: session.behavior }, 'session invalidated');
    return true;
  }

  // ---------------------------------------------------------------------- kv

  getKey(key: string): { index: number; entry?: KvEntry } {
    return { index: this.index('kvs'), entry: this.kvs.get(key) };
  }

  /** Entries under a prefix, sorted by key bytes; index is the prefix's own max index. */
  listPrefix(prefix: string): { index: number; entries: KvEntry[] } {
    const entries = [...this.kvs.values()].filter((e) => e.key.startsWith(prefix));
    entries.sort((a, b) => compareBytes(a.key, b.key));
    return { index: this.prefixIndex(prefix, entries), entries };
  }

  listKeys(prefix: string, separator: string): { index: number; keys: string[] } {
    const { index, entries } = this.listPrefix(prefix);
    const keys: string[] = [];
    let last = '';
    for (const entry of entries) {
      if (separator === '') {
        keys.push(entry.key);
        continue;
      }
      const at = entry.key.indexOf(separator, prefix.length);
      if (at === -1) {
        keys.push(entry.key);
      } else {
        const folder = entry.key.slice(0, at + separator.length);
        if (folder !== last) {
          keys.push(folder);
          last = folder;
        }
      }
    }
    return { index, keys };
  }

  private prefixIndex(prefix: string, entries: KvEntry[]): number {
    // Consul: max ModifyIndex of the entries and of the prefix's tombstones; the whole
    // table's index for the root or when nothing ever lived under the prefix.
    if (prefix === '') return this.index('kvs');
    let max = 0;
    for (const e of entries) max = Math.max(max, e.modifyIndex);
    for (const [key, idx] of this.tombstones) if (key.startsWith(prefix)) max = Math.max(max, idx);
    return max === 0 ? this.index('kvs') : max;
  }

  /** PUT /v1/kv/:key in its four flavours; the boolean is the HTTP body. */
  putKey(key: string, value: Buffer | null, flags: bigint, op: KvPutOp): boolean {
    const existing = this.kvs.get(key);
    const idx = this.raftIndex + 1;
    switch (op.kind) {
      case 'set':
        // Consul does not carry LockIndex over on a plain write (kvsSetTxn), so it drops to 0.
        this.commitIf(idx, this.writeEntry(idx, { key, value, flags, session: '', lockIndex: 0 }, false));
        return true;
      case 'cas':
        if (op.index === 0 && existing) return false;
        if (op.index !== 0 && (!existing || existing.modifyIndex !== op.index)) return false;
        this.commitIf(idx, this.writeEntry(idx, { key, value, flags, session: '', lockIndex: 0 }, false));
        return true;
      case 'lock': {
        // Checked on the leader before the write, ahead of session validation.
        const until = this.lockDelays.get(key);
        if (until !== undefined) {
          if (until > this.now()) return false;
          this.lockDelays.delete(key);
        }
        if (op.session === '') throw rpcError('missing session');
        checkUuid(op.session, 'failed session lookup: ');
        if (!this.sessions.has(op.session)) throw rpcError(`invalid session ${JSON.stringify(op.session)}`);
        let lockIndex = 1;
        if (existing) {
          if (existing.session === op.session) lockIndex = existing.lockIndex;
          else if (existing.session !== '') return false;
          else lockIndex = existing.lockIndex + 1;
        }
        this.commitIf(idx, this.writeEntry(idx, { key, value, flags, session: op.session, lockIndex }, true));
        return true;
      }
      case 'unlock':
        if (op.session === '') throw rpcError('missing session');
        if (!existing || existing.session !== op.session) return false;
        // A release also writes the request's value and flags, as in Consul.
        this.commitIf(idx, this.writeEntry(idx, { key, value, flags, session: '', lockIndex: existing.lockIndex }, true));
        return true;
    }
  }

  /** DELETE /v1/kv/:key; with `cas` a missing key counts as deleted, as in Consul. */
  deleteKey(key: string, opts: { recurse?: boolean; cas?: number }): boolean {
    const idx = this.raftIndex + 1;
    if (opts.recurse) {
      let changed = false;
      for (const k of [...this.kvs.keys()]) {
        if (k.startsWith(key)) {
          this.deleteEntry(idx, k);
          changed = true;
        }
      }
      this.commitIf(idx, changed);
      return true;
    }
    const existing = this.kvs.get(key);
    if (opts.cas !== undefined) {
      if (!existing || existing.modifyIndex !== opts.cas) return existing === undefined;
    }
    if (existing) {
      this.deleteEntry(idx, key);
      this.commitIf(idx, true);
    }
    return true;
  }

  /** Stores an entry unless nothing changed (then ModifyIndex stays, like kvsSetTxn). */
  private writeEntry(
    idx: number,
    next: Pick<KvEntry, 'key' | 'value' | 'flags' | 'session' | 'lockIndex'>,
    updateSession: boolean,
  ): boolean {
    const existing = this.kvs.get(next.key);
    const session = updateSession ? next.session : (existing?.session ?? '');
    if (
      existing &&
      existing.lockIndex === next.lockIndex &&
      existing.flags === next.flags &&
      existing.session === session &&
      sameBytes(existing.value, next.value)
    ) {
      return false;
    }
    this.kvs.set(next.key, {
      key: next.key,
      value: next.value,
      flags: next.flags,
      session,
      lockIndex: next.lockIndex,
      createIndex: existing?.createIndex ?? idx,
      modifyIndex: idx,
    });
    // A live entry's ModifyIndex now dominates the tombstone, so the prefix index cannot drop.
    this.tombstones.delete(next.key);
    return true;
  }

  private deleteEntry(idx: number, key: string): void {
    this.kvs.delete(key);
    this.tombstones.set(key, idx);
  }

  // ------------------------------------------------------------ index plumbing

  private commitIf(idx: number, changed: boolean): void {
    if (changed) this.commit(idx, ['kvs']);
  }

  private commit(idx: number, tables: Table[]): void {
    this.raftIndex = idx;
    for (const table of tables) {
      this.tableIndex[table] = idx;
      const waiting = [...this.waiters[table]];
      this.waiters[table].clear();
      for (const wake of waiting) wake();
    }
  }

  /**
   * Resolves true when `table` changes, false after `timeoutMs`, on abort or on close.
   * Blocking queries re-run their read after each wake-up, as Consul's watch sets do.
   */
  waitForChange(table: Table, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.closed || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (changed: boolean) => {
        clearTimeout(timer);
        this.waiters[table].delete(onChange);
        signal?.removeEventListener('abort', onAbort);
        resolve(changed);
      };
      const onChange = () => finish(!this.closed);
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      timer.unref();
      this.waiters[table].add(onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Stops every TTL timer and wakes every blocked query. */
  close(): void {
    this.closed = true;
    for (const timer of this.ttlTimers.values()) clearTimeout(timer);
    this.ttlTimers.clear();
    for (const table of ['kvs', 'sessions'] as const) {
      const waiting = [...this.waiters[table]];
      this.waiters[table].clear();
      for (const wake of waiting) wake();
    }
  }
}

/** memdb's UUID index rejects anything else before the lookup even happens. */
function checkUuid(id: string, prefix = ''): void {
  if (id.length !== 36) throw rpcError(`${prefix}UUID must be 36 characters`);
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(id)) {
    throw rpcError(`${prefix}invalid UUID ${JSON.stringify(id)}`);
  }
}

function dedupe(items: string[]): string[] {
  return [...new Set(items)];
}

/** Consul's radix tree orders keys by UTF-8 bytes, not UTF-16 code units. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  const x = a ?? Buffer.alloc(0);
  const y = b ?? Buffer.alloc(0);
  return x.equals(y);
}
