import { STATS_LATENCY_BUCKETS_MS } from '@cdp/jobdb';
import { latencySummary } from './delivery';

describe('latencySummary', () => {
  const buckets = (counts: Record<number, number>) => STATS_LATENCY_BUCKETS_MS.concat([Infinity]).map((_, i) => counts[i] ?? 0);

  it('answers the upper bound of the bucket holding each quantile', () => {
    // 90 samples ≤ 10 ms, 8 ≤ 250 ms, 2 ≤ 5 s.
    const s = latencySummary(buckets({ 0: 90, 4: 8, 8: 2 }));
    expect(s).toEqual({ samples: 100, p50Ms: 10, p95Ms: 250, p99Ms: 5_000 });
  });

  it('is null without samples, and for quantiles above the last bucket', () => {
    expect(latencySummary(buckets({}))).toEqual({ samples: 0, p50Ms: null, p95Ms: null, p99Ms: null });
    const s = latencySummary(buckets({ 0: 1, [STATS_LATENCY_BUCKETS_MS.length]: 1 }));
    expect(s).toEqual({ samples: 2, p50Ms: 10, p95Ms: null, p99Ms: null });
  });
});
