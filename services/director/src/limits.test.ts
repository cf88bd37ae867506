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
  it('opens after consecutive failures, probes one at a time when half-open, closes on success', () => {
    const b = new CircuitBreaker(settings);
    for (let i = 0; i < 3; i++) {
      expect(b.tryStart(0)).toBe(true);
      b.record(false, 0);
    }
    expect(b.state(10)).toBe('open');
    expect(b.tryStart(500)).toBe(false);
    expect(b.state(1_000)).toBe('half_open');
    expect(b.tryStart(1_000)).toBe(true);
    expect(b.tryStart(1_000)).toBe(false); // one probe at a time
    b.record(false, 1_000); // failed probe: open twice as long
    expect(b.tryStart(2_500)).toBe(false);
    expect(b.tryStart(3_000)).toBe(true);
    b.record(true, 3_000);
    expect(b.state(3_000)).toBe('closed');
    expect(b.tryStart(3_000)).toBe(true);
  });
  it('a success resets the failure count', () => {
    const b = new CircuitBreaker(settings);
    b.record(false, 0);
    b.record(false, 0);
    b.record(true, 0);
    b.record(false, 0);
    b.record(false, 0);
    expect(b.state(0)).toBe('closed');
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
