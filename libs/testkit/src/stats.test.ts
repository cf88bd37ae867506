import { percentile } from './stats';

describe('percentile', () => {
  it('is nearest-rank: p99 of 100 values is the 99th, p50 of 4 the 2nd, p100 the largest', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
    expect(percentile(hundred, 0.99)).toBe(99);
    expect(percentile(hundred, 1)).toBe(100);
    expect(percentile(hundred, 0.001)).toBe(1);
    expect(percentile(hundred, 0.07)).toBe(7);
    expect(percentile([4, 1, 3, 2], 0.5)).toBe(2);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });
});
