import { counter, gauge, histogram, Registry } from './index';

describe('metrics helpers', () => {
  it('enforces the cdp_ prefix and unit suffixes', () => {
    const register = new Registry();
    expect(() => counter({ name: 'events', help: 'x', register })).toThrow(/cdp_/);
    expect(() => counter({ name: 'cdp_events', help: 'x', register })).toThrow(/_total/);
    expect(() => gauge({ name: 'cdp_depth_total', help: 'x', register })).toThrow(/must not end/);
    expect(() => histogram({ name: 'cdp_latency_ms', help: 'x', register })).toThrow(/base units/);
  });

  it('registers once and exposes text format', async () => {
    const register = new Registry();
    const c = counter({ name: 'cdp_test_events_total', help: 'test', labelNames: ['outcome'] as const, register });
    expect(counter({ name: 'cdp_test_events_total', help: 'test', register })).toBe(c);
    c.labels('ok').inc(3);
    histogram({ name: 'cdp_test_duration_seconds', help: 'test', register }).observe(0.02);
    const text = await register.metrics();
    expect(text).toContain('cdp_test_events_total{outcome="ok"} 3');
    expect(text).toContain('cdp_test_duration_seconds_bucket');
  });
});
