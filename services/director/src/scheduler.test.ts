import { DEFAULT_POLICY, Scheduler, type DestinationPolicy } from './scheduler';
import { newJob, type Job } from './job';

let seq = 0;
function job(sourceId: string, destinationId: string, extra: Partial<Job> = {}): Job {
  seq += 1;
  return {
    ...newJob({
      id: `j${seq}`,
      jobDbId: 'db1',
      sourceId,
      messageId: `m${seq}`,
      destinationId,
      subscriptionId: 'default',
      payload: '{}',
      headers: {},
      receivedAt: 0,
      expiresAt: 1e12,
    }),
    ...extra,
  };
}

function scheduler(policies: Record<string, Partial<DestinationPolicy>> = {}, maxInFlight = 1_000) {
  return new Scheduler({
    breaker: { failureThreshold: 3, openMs: 1_000, maxOpenMs: 10_000 },
    maxInFlight,
    policyOf: (id) => ({ ...DEFAULT_POLICY, maxConcurrency: 1_000, ...policies[id] }),
  });
}

describe('Scheduler', () => {
  it('serves sources of one destination round-robin (a huge source does not delay a small one)', () => {
    const s = scheduler();
    for (let i = 0; i < 100; i++) s.enqueue(job('A', 'd'), 0);
    for (let i = 0; i < 3; i++) s.enqueue(job('B', 'd'), 0);
    const order: string[] = [];
    for (let i = 0; i < 6; i++) order.push(s.next(0)!.job.sourceId);
    expect(order.filter((x) => x === 'B')).toHaveLength(3);
  });

  it('starts a job of a sparse source at once on a rate-limited destination saturated by another source', () => {
    const s = scheduler({ d: { maxRatePerSecond: 400 } });
    for (let i = 0; i < 2_000; i++) s.enqueue(job('A', 'd'), 0);
    const waits: number[] = [];
    const enqueuedAt = new Map<string, number>();
    let started = 0;
    const startTimes: number[] = [];
    for (let t = 0; t < 2_000; t++) {
      // B: one job every 50 ms once A is backlogged (A took the first token), each arriving to an empty queue.
      if (t > 50 && t % 50 === 7) {
        const b = job('B', 'd');
        enqueuedAt.set(b.id, t);
        s.enqueue(b, t);
      }
      for (let p = s.next(t); p; p = s.next(t)) {
        started++;
        startTimes.push(t);
        if (p.job.sourceId === 'B') waits.push(t - enqueuedAt.get(p.job.id)!);
        s.finished(p.job, p.retry, 'success', t);
      }
    }
    expect(waits).toHaveLength(39);
    expect(Math.max(...waits)).toBe(0);
    // The reserve moves a token from A to B; the destination's rate still holds (2 s at 400/s plus the burst).
    expect(started).toBeLessThanOrEqual(800 + 40);
    // Tokens come on 10 ms ticks: A starts in groups, not one job every 2.5 ms.
    expect(new Set(startTimes).size).toBeLessThanOrEqual(2_000 / 10 + 39);
    expect(started).toBeGreaterThanOrEqual(760);
  });

  it('a source that empties its queue comes back sparse', () => {
    const s = scheduler({ d: { maxRatePerSecond: 400 } });
    for (let i = 0; i < 100; i++) s.enqueue(job('A', 'd'), 0);
    s.enqueue(job('B', 'd'), 0);
    s.enqueue(job('B', 'd'), 0);
    // B's first job goes sparse, its second through the round-robin.
    const order: string[] = [];
    for (let t = 0; t < 20 && order.filter((x) => x === 'B').length < 2; t++) {
      for (let p = s.next(t); p; p = s.next(t)) order.push(p.job.sourceId);
    }
    expect(order.filter((x) => x === 'B')).toHaveLength(2);
    const t = 100;
    while (s.next(t)); // A takes what it may; one token stays in reserve
    s.enqueue(job('B', 'd'), t);
    expect(s.next(t)?.job.sourceId).toBe('B');
  });

  it('claims a start for a new job only when it would be picked at once', () => {
    const s = scheduler({ d: { maxRatePerSecond: 400 }, paused: { paused: true } });
    for (let i = 0; i < 100; i++) s.enqueue(job('A', 'd'), 0);
    const t = 1_000;
    while (s.next(t)); // A takes its burst of 40 but one token (kept in reserve)
    const q = s.destinations.get('d')!;
    expect(q.inFlight).toBe(39);
    const b = job('B', 'd');
    expect(s.claim(job('A', 'd'), t)).toBe(false); // A has jobs waiting: a new one queues behind them
    expect(s.claim(b, t)).toBe(true); // B is sparse: it takes the reserved token
    expect(s.claim(job('C', 'd'), t)).toBe(false); // no token left
    expect(s.claim(job('A', 'paused'), t)).toBe(false);
    // A claimed slot counts like a picked one until it is released.
    expect(q.inFlight).toBe(40);
    s.release(b, false, t);
    expect(q.inFlight).toBe(39);
    // A sparse source already waiting goes first.
    const fresh = scheduler({ d: { maxConcurrency: 10 } });
    fresh.enqueue(job('B', 'd'), t);
    expect(fresh.claim(job('C', 'd'), t)).toBe(false);
    fresh.next(t);
    expect(fresh.claim(job('C', 'd'), t)).toBe(true);
  });

  it('limits concurrency per destination and frees slots on finish', () => {
    const s = scheduler({ d: { maxConcurrency: 2 } });
    for (let i = 0; i < 5; i++) s.enqueue(job('A', 'd'), 0);
    const a = s.next(0)!;
    s.next(0);
    expect(s.next(0)).toBeUndefined();
    s.finished(a.job, a.retry, 'success', 1);
    expect(s.next(1)).toBeDefined();
  });

  it('one saturated destination does not block another', () => {
    const s = scheduler({ slow: { maxConcurrency: 1 } });
    for (let i = 0; i < 10; i++) s.enqueue(job('A', 'slow'), 0);
    for (let i = 0; i < 10; i++) s.enqueue(job('A', 'fast'), 0);
    const picked: string[] = [];
    for (let p = s.next(0); p; p = s.next(0)) picked.push(p.job.destinationId);
    expect(picked.filter((d) => d === 'slow')).toHaveLength(1);
    expect(picked.filter((d) => d === 'fast')).toHaveLength(10);
  });

  it('applies the rate limit and the operator override', () => {
    const s = scheduler({ d: { maxRatePerSecond: 100 } });
    for (let i = 0; i < 1_000; i++) s.enqueue(job('A', 'd'), 0);
    let n = 0;
    for (let t = 0; t < 1_000; t++) {
      for (let p = s.next(t); p; p = s.next(t)) {
        n++;
        s.finished(p.job, p.retry, 'success', t);
      }
    }
    expect(n).toBeGreaterThanOrEqual(95);
    expect(n).toBeLessThanOrEqual(115);
    expect(s.nextWake(999)).toBeGreaterThan(999);
  });

  it('retries due now never starve first attempts; future retries wait for their time', () => {
    const s = scheduler({ d: { maxConcurrency: 4 } });
    for (let i = 0; i < 10; i++) s.enqueue(job('A', 'd', { attempt: 1, state: 'awaiting_retry', nextRetryAt: 0 }), 0);
    for (let i = 0; i < 10; i++) s.enqueue(job('A', 'd'), 0);
    s.enqueue(job('A', 'd', { attempt: 1, state: 'awaiting_retry', nextRetryAt: 5_000 }), 0);
    const firstFour: boolean[] = [];
    for (let i = 0; i < 4; i++) firstFour.push(s.next(0)!.retry);
    expect(firstFour.filter((r) => !r).length).toBeGreaterThanOrEqual(2);
    expect(s.nextWake(0)).toBeDefined();
  });

  it('holds a paused destination, and still hands out its expired jobs', () => {
    const policies: Record<string, Partial<DestinationPolicy>> = { d: { paused: true } };
    const s = scheduler(policies);
    s.enqueue(job('A', 'd', { expiresAt: 500 }), 0);
    expect(s.next(0)).toBeUndefined();
    expect(s.takeExpired(400)).toHaveLength(0);
    expect(s.takeExpired(500)).toHaveLength(1);
  });

  it('serves higher priority destinations first', () => {
    const s = scheduler({ lo: { priority: 0 }, hi: { priority: 5 } }, 1);
    s.enqueue(job('A', 'lo'), 0);
    s.enqueue(job('A', 'hi'), 0);
    expect(s.next(0)!.job.destinationId).toBe('hi');
  });

  it('stops serving a destination whose breaker opened, then probes it', () => {
    const s = scheduler({ d: { maxConcurrency: 10 } });
    for (let i = 0; i < 20; i++) s.enqueue(job('A', 'd'), 0);
    for (let i = 0; i < 3; i++) {
      const p = s.next(0)!;
      s.finished(p.job, p.retry, 'failure', 0);
    }
    expect(s.next(10)).toBeUndefined();
    expect(s.nextWake(10)).toBe(1_000);
    expect(s.next(1_000)).toBeDefined();
    expect(s.next(1_000)).toBeUndefined(); // single half-open probe
  });
});
