import { STATS_LATENCY_BUCKETS_MS, type DeliveryStatsRow } from '@cdp/jobdb';

export type StatsOutcome = 'succeeded' | 'retried' | 'discarded' | 'archived';

const MAX_FAILURE_SAMPLES = 5;

interface Cell {
  minute: number;
  sourceId: string;
  destinationId: string;
  succeeded: number;
  retried: number;
  discarded: number;
  archived: number;
  latency: number[];
  failures: DeliveryStatsRow['failures'];
  /** `<outcome>|<status>` → failed attempts. */
  codes: Map<string, number>;
}

/**
 * Per-minute delivery counts, latency histogram, failed attempts by HTTP status and a few sampled
 * failures per (source, destination), handed out as rows at each flush (the current minute's
 * too: the Event Delivery page is at most one flush behind; readers sum a minute's rows).
 */
export class StatsCollector {
  private cells = new Map<string, Cell>();

  constructor(private readonly director: string) {}

  record(
    sourceId: string,
    destinationId: string,
    outcome: StatsOutcome,
    latencyMs: number | null,
    failure: { status: number | null; error: string | null; responseExcerpt: string | null } | null,
    now: number,
  ): void {
    const minute = Math.floor(now / 60_000) * 60_000;
    const key = `${minute}|${sourceId}|${destinationId}`;
    let cell = this.cells.get(key);
    if (!cell) {
      cell = {
        minute,
        sourceId,
        destinationId,
        succeeded: 0,
        retried: 0,
        discarded: 0,
        archived: 0,
        latency: new Array<number>(STATS_LATENCY_BUCKETS_MS.length + 1).fill(0),
        failures: [],
        codes: new Map(),
      };
      this.cells.set(key, cell);
    }
    cell[outcome] += 1;
    if (latencyMs !== null) {
      let i = STATS_LATENCY_BUCKETS_MS.findIndex((b) => latencyMs <= b);
      if (i < 0) i = STATS_LATENCY_BUCKETS_MS.length;
      cell.latency[i] += 1;
    }
    if (failure && (outcome === 'retried' || outcome === 'discarded')) {
      const code = `${outcome}|${failure.status ?? 0}`;
      cell.codes.set(code, (cell.codes.get(code) ?? 0) + 1);
      if (cell.failures.length < MAX_FAILURE_SAMPLES) cell.failures.push({ at: new Date(now).toISOString(), outcome, ...failure });
    }
  }

  /** Rows of minutes that ended before `now` (all rows, the current minute's too, when `all`), removed from the collector. */
  take(now: number, all = false): DeliveryStatsRow[] {
    const current = Math.floor(now / 60_000) * 60_000;
    const rows: DeliveryStatsRow[] = [];
    for (const [key, c] of this.cells) {
      if (!all && c.minute >= current) continue;
      this.cells.delete(key);
      rows.push({
        minute: new Date(c.minute),
        director: this.director,
        sourceId: c.sourceId,
        destinationId: c.destinationId,
        succeeded: c.succeeded,
        retried: c.retried,
        discarded: c.discarded,
        archived: c.archived,
        latencyBuckets: c.latency,
        failures: c.failures,
        statusCounts: [...c.codes].map(([code, count]) => {
          const [outcome, status] = code.split('|');
          return { outcome: outcome as 'retried' | 'discarded', status: Number(status), count };
        }),
      });
    }
    return rows;
  }

  /** Puts rows back after a failed append, added to what was counted since, so the next flush retries them. */
  restore(rows: DeliveryStatsRow[]): void {
    for (const r of rows) {
      const key = `${r.minute.getTime()}|${r.sourceId}|${r.destinationId}`;
      const cell = this.cells.get(key);
      if (!cell) {
        this.cells.set(key, {
          minute: r.minute.getTime(),
          sourceId: r.sourceId,
          destinationId: r.destinationId,
          succeeded: r.succeeded,
          retried: r.retried,
          discarded: r.discarded,
          archived: r.archived,
          latency: r.latencyBuckets,
          failures: r.failures,
          codes: new Map(r.statusCounts.map((c) => [`${c.outcome}|${c.status}`, c.count])),
        });
        continue;
      }
      cell.succeeded += r.succeeded;
      cell.retried += r.retried;
      cell.discarded += r.discarded;
      cell.archived += r.archived;
      r.latencyBuckets.forEach((n, i) => (cell.latency[i] += n));
      cell.failures = [...r.failures, ...cell.failures].slice(0, MAX_FAILURE_SAMPLES);
      for (const c of r.statusCounts) {
        const code = `${c.outcome}|${c.status}`;
        cell.codes.set(code, (cell.codes.get(code) ?? 0) + c.count);
      }
    }
  }
}
