import { AdaptiveRate, CircuitBreaker, RateMeter, TokenBucket } from './limits';

describe('TokenBucket', () => {
  it('admits about rate per second and nothing when empty', () => {
    const b = new TokenBucket(100, 0);
    let taken = 0;
    for (let t = 0; t <= 1_000; t += 1) while (b.tryTake(t)) taken++;
    expect(taken).toBeGreaterThanOrEqual(99);
    expect(taken).toBeLessThanOrEqual(112);
    expect(b.nextAt(1_000)).toBeGreaterThan(1_000);
  });
  it('keeps a reserve for whoever asks without one, when its burst can hold it', () => {
    const b = new TokenBucket(400, 0); // burst 40
    for (let t = 0; t <= 1_000; t += 1) while (b.nextAt(t, 1) <= t) b.tryTake(t);
    // A bulk taker leaves one token; a taker without reserve gets it at once.
    expect(b.nextAt(1_000, 1)).toBeGreaterThan(1_000);
    expect(b.nextAt(1_000, 0)).toBe(1_000);
    b.tryTake(1_000);
    expect(b.nextAt(1_000, 0)).toBeGreaterThan(1_000);
    // A burst of one token holds no reserve.
    const small = new TokenBucket(5, 0);
    expect(small.nextAt(0, 1)).toBe(0);
  });
  it('is unlimited without a rate', () => {
    const b = new TokenBucket(undefined, 0);
    for (let i = 0; i < 10_000; i++) expect(b.tryTake(0)).toBe(true);
  });
});

describe('CircuitBreaker', () => {
  const settings = { failureThreshold: 3, openMs: 1_000, maxOpenMs: 8_000 };
  /** Starts request `id` if the breaker allows it now. */
  function tryStart(b: CircuitBreaker, id: string, now: number): boolean {
    if (!b.allows(now)) return false;
    b.start(id, now);
    return true;
  }
  it('opens after consecutive failures, probes one at a time when half-open, closes on success', () => {
    const b = new CircuitBreaker(settings);
    for (let i = 0; i < 3; i++) {
      expect(tryStart(b, `f${i}`, 0)).toBe(true);
      b.record(`f${i}`, false, 0);
    }
    expect(b.state(10)).toBe('open');
    expect(tryStart(b, 'x', 500)).toBe(false);
    expect(b.state(1_000)).toBe('half_open');
    expect(tryStart(b, 'p1', 1_000)).toBe(true);
    expect(tryStart(b, 'y', 1_000)).toBe(false); // one probe at a time
    b.record('p1', false, 1_000); // failed probe: open twice as long
    expect(tryStart(b, 'y', 2_500)).toBe(false);
    expect(tryStart(b, 'p2', 3_000)).toBe(true);
    b.record('p2', true, 3_000);
    expect(b.state(3_000)).toBe('closed');
    expect(tryStart(b, 'z', 3_000)).toBe(true);
  });
  it('a success resets the failure count', () => {
    const b = new CircuitBreaker(settings);
    for (const [id, ok] of [
      ['a', false],
      ['b', false],
      ['c', true],
      ['d', false],
      ['e', false],
    ] as const) {
      tryStart(b, id, 0);
      b.record(id, ok, 0);
    }
    expect(b.state(0)).toBe('closed');
  });
  it('late results of calls sent before it opened neither close it, reopen it, free the probe slot, nor count later', () => {
    const b = new CircuitBreaker(settings);
    for (const id of ['f0', 'f1', 'f2', 'late-ok', 'late-fail', 'late-fail2', 'late-fail3', 'late-fail4']) tryStart(b, id, 0);
    for (const id of ['f0', 'f1', 'f2']) b.record(id, false, 0);
    expect(b.state(0)).toBe('open');
    b.record('late-ok', true, 10); // sent before the opening: not a probe
    expect(b.state(10)).toBe('open');
    expect(tryStart(b, 'probe', 1_000)).toBe(true);
    b.record('late-fail', false, 1_010); // must not count as the probe's failure
    expect(b.state(1_010)).toBe('half_open');
    expect(tryStart(b, 'second', 1_010)).toBe(false); // the probe is still in flight
    b.cancel('late-fail'); // and giving back another call's slot does not free the probe's
    expect(tryStart(b, 'second', 1_010)).toBe(false);
    b.record('probe', true, 1_020);
    expect(b.state(1_020)).toBe('closed');
    // Closed again: three late failures from before the opening do not reopen it.
    for (const id of ['late-fail2', 'late-fail3', 'late-fail4']) b.record(id, false, 1_030);
    expect(b.state(1_030)).toBe('closed');
  });
});

describe('AdaptiveRate', () => {
  it('halves on 429 from the observed rate, ignores bursts of 429 within a second, recovers when clean', () => {
    const a = new AdaptiveRate(1, 5_000);
    a.onThrottled(200, 0);
    expect(a.value).toBe(100);
    a.onThrottled(200, 500);
    expect(a.value).toBe(100);
    a.onThrottled(100, 1_500);
    expect(a.value).toBe(50);
    a.onSuccess(undefined, 50, 3_000); // too soon after the cut
    expect(a.value).toBe(50);
    let t = 7_000;
    while (a.value !== undefined && t < 60_000) {
      a.onSuccess(80, 50, t);
      t += 1_000;
    }
    expect(a.value).toBeUndefined();
  });
});

describe('RateMeter', () => {
  it('counts the last second', () => {
    const m = new RateMeter();
    for (let t = 0; t < 1_000; t += 10) m.mark(t);
    expect(m.perSecond(999)).toBe(100);
    expect(m.perSecond(2_500)).toBe(0);
  });
});
