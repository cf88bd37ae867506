/**
 * Nearest-rank percentile (the smallest value with at least p of the values at or below it).
 * p99 of 100 values is the 99th smallest, not the largest; NaN for no values. The epsilon
 * keeps float error (100 × 0.07 = 7.000000000000001) from moving it one rank up.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p - 1e-9) - 1))];
}
