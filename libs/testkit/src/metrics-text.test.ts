import { metricSamples, metricValue } from './metrics-text';

const TEXT = [
  '# HELP cdp_x_total Things.',
  '# TYPE cdp_x_total counter',
  'cdp_x_total{reason="a",source="web"} 2',
  'cdp_x_total{reason="b",source="web"} 3',
  'cdp_x_total{reason="a",source="xweb"} 5',
  'cdp_x_totals 100',
  'cdp_y{v="with \\"quote\\", comma"} 7',
  'cdp_h_bucket{le="+Inf"} 4',
  'cdp_g 1.5e3',
].join('\n');

describe('metricValue', () => {
  it('sums the samples whose labels include the given ones, matching names and label values exactly', () => {
    expect(metricValue(TEXT, 'cdp_x_total')).toBe(10);
    expect(metricValue(TEXT, 'cdp_x_total', { reason: 'a' })).toBe(7);
    expect(metricValue(TEXT, 'cdp_x_total', { source: 'web' })).toBe(5);
    expect(metricValue(TEXT, 'cdp_x_total', { reason: 'a', source: 'web' })).toBe(2);
    expect(metricValue(TEXT, 'cdp_g')).toBe(1500);
    expect(metricValue(TEXT, 'cdp_h_bucket', { le: '+Inf' })).toBe(4);
  });

  it('reads escaped label values and gives 0 (no samples) for what is absent', () => {
    expect(metricSamples(TEXT, 'cdp_y', { v: 'with "quote", comma' })).toEqual([7]);
    expect(metricSamples(TEXT, 'cdp_x_total', { reason: 'c' })).toEqual([]);
    expect(metricValue(TEXT, 'cdp_absent')).toBe(0);
  });
});
