import { StatsCollector } from './stats';

const MIN = 60_000;
const failure = (status: number | null) => ({ status, error: status === null ? 'timeout' : `HTTP ${status}`, responseExcerpt: null });

describe('StatsCollector', () => {
  it('counts failed attempts by outcome and status (0: no answer) and samples them with their outcome', () => {
    const c = new StatsCollector('d1');
    const t = 10 * MIN;
    c.record('web', 'hook', 'succeeded', 12, null, t);
    c.record('web', 'hook', 'retried', 30, failure(503), t + 1);
    c.record('web', 'hook', 'retried', 30, failure(503), t + 2);
    c.record('web', 'hook', 'retried', null, failure(null), t + 3);
    c.record('web', 'hook', 'discarded', 40, failure(400), t + 4);
    const [row] = c.take(t + 5, true);
    expect(row).toMatchObject({ succeeded: 1, retried: 3, discarded: 1, archived: 0 });
    expect(row.statusCounts).toEqual([
      { outcome: 'retried', status: 503, count: 2 },
      { outcome: 'retried', status: 0, count: 1 },
      { outcome: 'discarded', status: 400, count: 1 },
    ]);
    expect(row.failures.map((f) => f.outcome)).toEqual(['retried', 'retried', 'retried', 'discarded']);
  });

  it('keeps the current minute unless asked for all rows', () => {
    const c = new StatsCollector('d1');
    c.record('web', 'hook', 'succeeded', 5, null, 10 * MIN + 1);
    expect(c.take(10 * MIN + 2)).toEqual([]);
    expect(c.take(10 * MIN + 2, true)).toHaveLength(1);
  });

  it('adds rows restored after a failed append to what was counted since', () => {
    const c = new StatsCollector('d1');
    const t = 10 * MIN;
    c.record('web', 'hook', 'retried', 30, failure(500), t);
    const taken = c.take(t + 1, true);
    c.record('web', 'hook', 'retried', 30, failure(500), t + 2);
    c.record('web', 'hook', 'succeeded', 30, null, t + 3);
    c.restore(taken);
    const [row] = c.take(t + 4, true);
    expect(row).toMatchObject({ succeeded: 1, retried: 2 });
    expect(row.statusCounts).toEqual([{ outcome: 'retried', status: 500, count: 2 }]);
    expect(row.latencyBuckets.reduce((a, b) => a + b, 0)).toBe(3);
    expect(row.failures).toHaveLength(2);
  });
});
