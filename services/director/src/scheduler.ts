import { AdaptiveRate, CircuitBreaker, RateMeter, TokenBucket, type BreakerSettings } from './limits';
import type { Job } from './job';

/** Destination settings that shape dispatch (workspace limits + operator control). */
export interface DestinationPolicy {
  maxConcurrency: number;
  maxRatePerSecond?: number;
  paused: boolean;
  priority: number;
  /** Operator rate override (Consul control); wins over the workspace limit when set. */
  rateOverride?: number;
}

export const DEFAULT_POLICY: DestinationPolicy = { maxConcurrency: 10, paused: false, priority: 0 };

/** Simple FIFO with O(1) shift. */
class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  drain(pred: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const out: T[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const it = this.items[i] as T;
      (pred(it) ? out : kept).push(it);
    }
    this.items = kept;
    this.head = 0;
    return out;
  }
  values(): T[] {
    return this.items.slice(this.head) as T[];
  }
}

/** Min-heap of retries by due time. */
class RetryHeap {
  private heap: Job[] = [];
  get length(): number {
    return this.heap.length;
  }
  peek(): Job | undefined {
    return this.heap[0];
  }
  push(job: Job): void {
    const h = this.heap;
    h.push(job);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (due(h[p]) <= due(h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  pop(): Job | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && due(h[l]) < due(h[m])) m = l;
        if (r < h.length && due(h[r]) < due(h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
  removeWhere(pred: (job: Job) => boolean): Job[] {
    const out = this.heap.filter(pred);
    if (out.length === 0) return out;
    const kept = this.heap.filter((j) => !pred(j));
    this.heap = [];
    for (const j of kept) this.push(j);
    return out;
  }
  values(): Job[] {
    return [...this.heap];
  }
}

const due = (job: Job): number => job.nextRetryAt ?? 0;

/** `to.push(...from)` without spreading: a queue of a million jobs would overflow the call stack. */
function append<T>(to: T[], from: readonly T[]): void {
  for (const item of from) to.push(item);
}

/**
 * One destination: a virtual queue per source, due retries apart, and its limits. Sources are
 * served round-robin, except that a source whose queue was empty ("sparse": it sends no more
 * than its share) gets its next job before the backlogged ones' turns, as FQ-CoDel serves new
 * flows, and may take the token a rate-limited destination keeps in reserve against backlogged
 * sources: a small source's job starts at once instead of waiting for the next token.
 */
export class DestinationQueue {
  readonly sources = new Map<string, Deque<Job>>();
  /** Sources whose queue went from empty to non-empty, in arrival order. */
  private sparse: string[] = [];
  /** Backlogged sources, round-robin. */
  private rr: string[] = [];
  private rrIndex = 0;
  readonly retries = new RetryHeap();
  readonly dueRetries = new Deque<Job>();
  inFlight = 0;
  retriesInFlight = 0;
  firstWaiting = 0;
  policy: DestinationPolicy = DEFAULT_POLICY;
  readonly bucket: TokenBucket;
  readonly breaker: CircuitBreaker;
  readonly adaptive = new AdaptiveRate();
  readonly meter = new RateMeter();
  private turn = 0;

  constructor(
    readonly id: string,
    breaker: BreakerSettings,
    now: number,
  ) {
    this.bucket = new TokenBucket(undefined, now);
    this.breaker = new CircuitBreaker(breaker);
  }

  get depth(): number {
    return this.firstWaiting + this.retries.length + this.dueRetries.length;
  }

  effectiveRate(): number | undefined {
    const configured = this.policy.rateOverride ?? this.policy.maxRatePerSecond;
    const adaptive = this.adaptive.value;
    if (configured === undefined) return adaptive;
    if (adaptive === undefined) return configured;
    return Math.min(configured, adaptive);
  }

  addFirst(job: Job): void {
    let q = this.sources.get(job.sourceId);
    if (!q) {
      q = new Deque<Job>();
      this.sources.set(job.sourceId, q);
      this.sparse.push(job.sourceId);
    }
    q.push(job);
    this.firstWaiting += 1;
  }

  addRetry(job: Job): void {
    this.retries.push(job);
  }

  promoteDue(now: number): void {
    while (this.retries.length > 0 && due(this.retries.peek()!) <= now) this.dueRetries.push(this.retries.pop()!);
  }

  /** True when a new job of `sourceId` would be picked next: nothing of it waits here, and no other sparse source does. */
  wouldPickNext(sourceId: string): boolean {
    return this.sparse.length === 0 && !this.sources.has(sourceId);
  }

  /** Tokens a pick must leave in the bucket: one kept for sparse sources unless one is waiting. */
  tokenReserve(): number {
    return this.sparse.length > 0 ? 0 : 1;
  }

  private takeFirst(): Job | undefined {
    while (this.sparse.length > 0) {
      const source = this.sparse.shift()!;
      const q = this.sources.get(source)!;
      const job = q.shift();
      if (q.length > 0) this.rr.push(source);
      else this.sources.delete(source);
      if (job) {
        this.firstWaiting -= 1;
        return job;
      }
    }
    // Round-robin over backlogged sources so one huge source never delays a small one.
    while (this.rr.length > 0) {
      if (this.rrIndex >= this.rr.length) this.rrIndex = 0;
      const source = this.rr[this.rrIndex];
      const q = this.sources.get(source)!;
      const job = q.shift();
      if (q.length > 0) this.rrIndex += 1;
      else {
        // Emptied: forget it (its next job arrives sparse), keeping the rotation position.
        this.sources.delete(source);
        this.rr.splice(this.rrIndex, 1);
      }
      if (job) {
        this.firstWaiting -= 1;
        return job;
      }
    }
    return undefined;
  }

  /** Drops sources whose queue a removal emptied, so their next job arrives sparse. */
  private forgetEmptySources(): void {
    const empty = (source: string) => this.sources.get(source)!.length === 0;
    if (!this.rr.some(empty) && !this.sparse.some(empty)) return;
    const current = this.rr[this.rrIndex];
    this.rr = this.rr.filter((source) => !empty(source));
    this.sparse = this.sparse.filter((source) => !empty(source));
    for (const [source, q] of this.sources) if (q.length === 0) this.sources.delete(source);
    this.rrIndex = Math.max(0, this.rr.indexOf(current));
  }

  /**
   * Picks the next job: a sparse source's first; otherwise first attempts never wait behind
   * retries: when both are waiting, retries get every other pick and at most half of the
   * concurrency.
   */
  take(): { job: Job; retry: boolean } | undefined {
    const haveFirst = this.firstWaiting > 0;
    const haveRetry = this.dueRetries.length > 0;
    if (!haveFirst && !haveRetry) return undefined;
    const retryCap = Math.max(1, Math.floor(this.policy.maxConcurrency / 2));
    const retryTurn = haveRetry && this.sparse.length === 0 && (!haveFirst || (this.turn++ % 2 === 1 && this.retriesInFlight < retryCap));
    if (retryTurn) return { job: this.dueRetries.shift()!, retry: true };
    const job = this.takeFirst();
    if (job) return { job, retry: false };
    if (haveRetry) return { job: this.dueRetries.shift()!, retry: true };
    return undefined;
  }

  /**
   * Removes waiting jobs that expired: retries always fully; first-attempt queues fully when
   * `full`, else from the head only (jobs of one queue mostly share one window, so a full
   * scan of a huge backlog is kept for periodic passes).
   */
  takeExpired(now: number, full = true): Job[] {
    const out = this.dueRetries.drain((j) => j.expiresAt <= now);
    append(
      out,
      this.retries.removeWhere((j) => j.expiresAt <= now),
    );
    for (const q of this.sources.values()) {
      if (full) {
        const gone = q.drain((j) => j.expiresAt <= now);
        this.firstWaiting -= gone.length;
        append(out, gone);
        continue;
      }
      while (q.length > 0 && q.peek()!.expiresAt <= now) {
        out.push(q.shift()!);
        this.firstWaiting -= 1;
      }
    }
    this.forgetEmptySources();
    return out;
  }

  removeJobDb(jobDbId: string): Job[] {
    const removed: Job[] = [];
    for (const q of this.sources.values()) {
      const gone = q.drain((j) => j.jobDbId === jobDbId);
      this.firstWaiting -= gone.length;
      append(removed, gone);
    }
    this.forgetEmptySources();
    append(
      removed,
      this.dueRetries.drain((j) => j.jobDbId === jobDbId),
    );
    append(
      removed,
      this.retries.removeWhere((j) => j.jobDbId === jobDbId),
    );
    return removed;
  }
}

export interface SchedulerOptions {
  breaker: BreakerSettings;
  /** Most requests in flight over all destinations. */
  maxInFlight: number;
  policyOf: (destinationId: string) => DestinationPolicy;
}

/**
 * Decides which job to start next: destinations by priority then round-robin, each limited
 * by its concurrency, rate (workspace, operator override, adaptive) and circuit breaker.
 * Pure bookkeeping with an injected clock, so fairness is unit-testable.
 */
export class Scheduler {
  readonly destinations = new Map<string, DestinationQueue>();
  /** Destinations grouped by priority (highest first), each level with its round-robin cursor. */
  private levels: Array<{ priority: number; ids: string[]; cursor: number }> = [];
  inFlight = 0;

  constructor(private readonly options: SchedulerOptions) {}

  private queue(destinationId: string, now: number): DestinationQueue {
    let q = this.destinations.get(destinationId);
    if (!q) {
      q = new DestinationQueue(destinationId, this.options.breaker, now);
      q.policy = this.options.policyOf(destinationId);
      this.destinations.set(destinationId, q);
      this.rebuildLevels();
    }
    return q;
  }

  private rebuildLevels(): void {
    const byPriority = new Map<number, string[]>();
    for (const q of this.destinations.values()) {
      const ids = byPriority.get(q.policy.priority) ?? [];
      ids.push(q.id);
      byPriority.set(q.policy.priority, ids);
    }
    const previous = new Map(this.levels.map((l) => [l.priority, l.cursor]));
    this.levels = [...byPriority.entries()]
      .sort((a, b) => b[0] - a[0])
      .map(([priority, ids]) => ({ priority, ids, cursor: (previous.get(priority) ?? 0) % ids.length }));
  }

  /** Re-reads every destination's policy (workspace reload, control change). */
  refreshPolicies(now: number): void {
    for (const q of this.destinations.values()) {
      q.policy = this.options.policyOf(q.id);
      q.bucket.setRate(q.effectiveRate(), now);
    }
    this.rebuildLevels();
  }

  enqueue(job: Job, now: number): void {
    const q = this.queue(job.destinationId, now);
    if (job.nextRetryAt !== null && job.attempt > 0) q.addRetry(job);
    else if (job.attempt > 0) q.dueRetries.push(job);
    else q.addFirst(job);
  }

  /** The next job allowed to start now, with its slot taken; undefined when none. */
  next(now: number): { job: Job; retry: boolean } | undefined {
    if (this.inFlight >= this.options.maxInFlight) return undefined;
    for (const level of this.levels) {
      const n = level.ids.length;
      for (let k = 0; k < n; k++) {
        const q = this.destinations.get(level.ids[(level.cursor + k) % n])!;
        const picked = this.tryStart(q, now);
        if (picked) {
          level.cursor = (level.cursor + k + 1) % n;
          return picked;
        }
      }
    }
    return undefined;
  }

  private tryStart(q: DestinationQueue, now: number): { job: Job; retry: boolean } | undefined {
    if (q.policy.paused) return undefined;
    q.promoteDue(now);
    if (q.firstWaiting === 0 && q.dueRetries.length === 0) return undefined;
    if (q.inFlight >= q.policy.maxConcurrency) return undefined;
    q.bucket.setRate(q.effectiveRate(), now);
    if (q.bucket.nextAt(now, q.tokenReserve()) > now) return undefined;
    if (!q.breaker.allows(now)) return undefined;
    const picked = q.take();
    if (!picked) return undefined;
    // In half-open this call is the probe.
    q.breaker.start(picked.job.id, now);
    this.takeSlot(q, picked.retry, now);
    return picked;
  }

  private takeSlot(q: DestinationQueue, retry: boolean, now: number): void {
    q.bucket.tryTake(now);
    q.inFlight += 1;
    if (retry) q.retriesInFlight += 1;
    q.meter.mark(now);
    this.inFlight += 1;
  }

  /**
   * Takes a start slot for a new job that is not queued (its insert is about to be committed)
   * when it would be picked at once if it were: its source is sparse at that destination (as
   * the first job of a sparse source it may take the reserved token) and concurrency, rate
   * and breaker allow a start. The caller starts it, or gives the slot back with `release`.
   */
  claim(job: Job, now: number): boolean {
    if (this.inFlight >= this.options.maxInFlight) return false;
    const q = this.queue(job.destinationId, now);
    if (q.policy.paused || !q.wouldPickNext(job.sourceId) || q.inFlight >= q.policy.maxConcurrency) return false;
    q.bucket.setRate(q.effectiveRate(), now);
    if (q.bucket.nextAt(now, 0) > now) return false;
    if (!q.breaker.allows(now)) return false;
    q.breaker.start(job.id, now);
    this.takeSlot(q, false, now);
    return true;
  }

  /** Frees the slot of a finished attempt and feeds the breaker and the adaptive rate. */
  finished(job: Job, retry: boolean, outcome: 'success' | 'failure' | 'throttled' | 'rejected', now: number): void {
    const q = this.queue(job.destinationId, now);
    q.inFlight -= 1;
    if (retry) q.retriesInFlight -= 1;
    this.inFlight -= 1;
    // A 4xx answer shows the endpoint is up: it counts as a success for the breaker.
    q.breaker.record(job.id, outcome !== 'failure', now);
    if (outcome === 'throttled') q.adaptive.onThrottled(q.meter.perSecond(now), now);
    else if (outcome === 'success') q.adaptive.onSuccess(q.policy.rateOverride ?? q.policy.maxRatePerSecond, q.meter.perSecond(now), now);
  }

  /** Puts a job back without it having started (e.g. its executing write failed). */
  release(job: Job, retry: boolean, now: number): void {
    const q = this.queue(job.destinationId, now);
    q.inFlight -= 1;
    if (retry) q.retriesInFlight -= 1;
    this.inFlight -= 1;
    // Nothing was sent: the breaker learns nothing, but a claimed probe slot is given back.
    q.breaker.cancel(job.id);
  }

  /** Earliest time something might become startable (retry due, token, breaker); undefined if nothing waits. */
  nextWake(now: number): number | undefined {
    let wake: number | undefined;
    const consider = (t: number) => {
      wake = wake === undefined ? t : Math.min(wake, t);
    };
    for (const q of this.destinations.values()) {
      if (q.policy.paused) continue;
      if (q.retries.length > 0) consider(due(q.retries.peek()!));
      if (q.firstWaiting > 0 || q.dueRetries.length > 0) {
        if (q.inFlight >= q.policy.maxConcurrency) continue;
        consider(Math.max(q.bucket.nextAt(now, q.tokenReserve()), q.breaker.nextAt(now)));
      }
    }
    return wake;
  }

  takeExpired(now: number, full = true): Job[] {
    const out: Job[] = [];
    for (const q of this.destinations.values()) append(out, q.takeExpired(now, full || q.depth <= 20_000));
    return out;
  }

  /** Removes the waiting jobs of `jobDbId` and returns them. */
  removeJobDb(jobDbId: string): Job[] {
    const removed: Job[] = [];
    for (const q of this.destinations.values()) append(removed, q.removeJobDb(jobDbId));
    return removed;
  }

  depth(): Map<string, number> {
    const out = new Map<string, number>();
    for (const q of this.destinations.values()) out.set(q.id, q.depth);
    return out;
  }

  get waiting(): number {
    let n = 0;
    for (const q of this.destinations.values()) n += q.depth;
    return n;
  }
}
