// Per-destination flow control: token bucket, circuit breaker, adaptive rate on 429.

/**
 * Tokens are added on 10 ms ticks, not continuously: a backlogged rate-limited destination
 * starts its jobs a few at a time (at 400/s, four per tick: one `executing` transaction and one
 * wake-up instead of four), which is what keeps its load on the JobDB and the event loop low
 * next to small sources. The rate is unchanged.
 */
const REFILL_TICK_MS = 10;

const tickOf = (now: number): number => now - (now % REFILL_TICK_MS);

/** Token bucket; `rate` undefined = unlimited. Burst is a tenth of a second's worth (≥ 1). */
export class TokenBucket {
  private tokens = 1;
  /** The refill tick the tokens are counted up to. */
  private last: number;
  private rateValue: number | undefined;

  constructor(rate: number | undefined, now: number) {
    this.rateValue = rate;
    this.last = tickOf(now);
  }

  get rate(): number | undefined {
    return this.rateValue;
  }

  setRate(rate: number | undefined, now: number): void {
    if (rate === this.rateValue) return;
    this.refill(now);
    this.rateValue = rate;
    this.tokens = Math.min(this.tokens, this.burst());
  }

  private burst(): number {
    return this.rateValue === undefined ? Infinity : Math.max(1, this.rateValue / 10);
  }

  private refill(now: number): void {
    const tick = tickOf(now);
    if (this.rateValue === undefined || tick <= this.last) return;
    this.tokens = Math.min(this.burst(), this.tokens + ((tick - this.last) / 1000) * this.rateValue);
    this.last = tick;
  }

  tryTake(now: number): boolean {
    if (this.rateValue === undefined) return true;
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /**
   * When a token can be taken (ms timestamp) while leaving `reserve` tokens in the bucket, a
   * reserve the burst cannot hold counting as none. Whoever takes with a reserve of 0 can use
   * the tokens a bulk taker (reserve 1) leaves, without waiting for the next refill.
   */
  nextAt(now: number, reserve = 0): number {
    if (this.rateValue === undefined) return now;
    this.refill(now);
    const needed = 1 + (this.burst() >= 1 + reserve ? reserve : 0);
    if (this.tokens >= needed) return now;
    const perTick = (this.rateValue * REFILL_TICK_MS) / 1000;
    return this.last + Math.ceil((needed - this.tokens) / perTick) * REFILL_TICK_MS;
  }
}

export interface BreakerSettings {
  /** Consecutive retryable failures that open the circuit. */
  failureThreshold: number;
  /** First open period; doubles on each failed probe up to maxOpenMs. */
  openMs: number;
  maxOpenMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

/**
 * Opens after `failureThreshold` consecutive failures; after the open period one probe at a
 * time is let through (half-open); the probe's success closes it, its failure reopens it for
 * longer. Requests are tracked by id (a job has one call in flight at a time): with
 * concurrency above 1, calls sent before the circuit opened may answer while it is open or
 * probing, or after a probe closed it; their results describe the endpoint before the opening
 * and change nothing, so only the probe decides, and only calls sent since the last opening
 * count towards the next one.
 */
export class CircuitBreaker {
  private stateValue: BreakerState = 'closed';
  private failures = 0;
  private openUntil = 0;
  private openFor: number;
  /** Number of openings so far: the "epoch" a request was started in. */
  private openings = 0;
  /** Requests started and not finished, with the epoch they started in. */
  private readonly started = new Map<string, number>();
  private probe: string | undefined;

  constructor(private readonly settings: BreakerSettings) {
    this.openFor = settings.openMs;
  }

  state(now: number): BreakerState {
    if (this.stateValue === 'open' && now >= this.openUntil) this.stateValue = 'half_open';
    return this.stateValue;
  }

  /** Whether a request may start now (in half-open: no probe is in flight). */
  allows(now: number): boolean {
    const s = this.state(now);
    return s === 'closed' || (s === 'half_open' && this.probe === undefined);
  }

  /** Records that request `id` started (allowed just before); in half-open it is the probe. */
  start(id: string, now: number): void {
    if (this.state(now) === 'half_open') this.probe = id;
    this.started.set(id, this.openings);
  }

  /** When a request could start next (for timers). */
  nextAt(now: number): number {
    return this.state(now) === 'open' ? this.openUntil : now;
  }

  /** Forgets request `id`, started but never sent (a probe slot is given back). */
  cancel(id: string): void {
    this.started.delete(id);
    if (this.probe === id) this.probe = undefined;
  }

  /** Records the outcome of request `id`. */
  record(id: string, success: boolean, now: number): void {
    const epoch = this.started.get(id);
    this.started.delete(id);
    if (id === this.probe) {
      this.probe = undefined;
      if (success) this.close();
      else {
        this.openFor = Math.min(this.settings.maxOpenMs, this.openFor * 2);
        this.open(now);
      }
      return;
    }
    // Sent before the last opening (or never started here): says nothing about the endpoint now.
    if (epoch !== this.openings || this.stateValue !== 'closed') return;
    if (success) {
      this.failures = 0;
    } else if (++this.failures >= this.settings.failureThreshold) {
      this.open(now);
    }
  }

  private close(): void {
    this.stateValue = 'closed';
    this.failures = 0;
    this.openFor = this.settings.openMs;
  }

  private open(now: number): void {
    this.stateValue = 'open';
    this.openUntil = now + this.openFor;
    this.openings += 1;
    this.failures = 0;
  }
}

/**
 * AIMD on 429: halve the allowed rate (starting from the rate actually observed), then grow
 * it by 20 % per clean second once 5 s passed without a 429, until it no longer limits.
 */
export class AdaptiveRate {
  private limit: number | undefined;
  private lastCut = -Infinity;
  private lastGrow = -Infinity;

  constructor(
    private readonly minRate = 1,
    private readonly quietMs = 5_000,
  ) {}

  get value(): number | undefined {
    return this.limit;
  }

  onThrottled(observedRate: number, now: number): void {
    // Requests already in flight when the first 429 arrived would otherwise cut it to nothing.
    if (now - this.lastCut < 1_000) return;
    const from = this.limit ?? Math.max(this.minRate, observedRate);
    this.limit = Math.max(this.minRate, from / 2);
    this.lastCut = now;
  }

  onSuccess(ceiling: number | undefined, observedRate: number, now: number): void {
    if (this.limit === undefined) return;
    if (now - this.lastCut < this.quietMs || now - this.lastGrow < 1_000) return;
    this.lastGrow = now;
    this.limit *= 1.2;
    // Recovered once it no longer constrains: above the configured cap, or well above the real rate.
    if ((ceiling !== undefined && this.limit >= ceiling) || (ceiling === undefined && this.limit > observedRate * 4 && this.limit > 50)) {
      this.limit = undefined;
    }
  }
}

/** Starts in the last second (sliding, 10 slots of 100 ms): what a 429 cut starts from. */
export class RateMeter {
  private readonly slots = new Array<number>(10).fill(0);
  private slotAt = 0;

  mark(now: number): void {
    this.advance(now);
    this.slots[Math.floor(now / 100) % 10] += 1;
  }

  perSecond(now: number): number {
    this.advance(now);
    return this.slots.reduce((a, b) => a + b, 0);
  }

  private advance(now: number): void {
    const slot = Math.floor(now / 100);
    if (slot - this.slotAt >= 10) this.slots.fill(0);
    else for (let s = this.slotAt + 1; s <= slot; s++) this.slots[s % 10] = 0;
    this.slotAt = Math.max(this.slotAt, slot);
  }
}
