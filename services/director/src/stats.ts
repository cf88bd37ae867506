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
}

/**
 * Per-minute delivery counts, latency histogram and a few sampled failures per
 * (source, destination), handed out as rows once their minute is over.
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
      };
      this.cells.set(key, cell);
    }
    cell[outcome] += 1;
    if (latencyMs !== null) {
      let i = STATS_LATENCY_BUCKETS_MS.findIndex((b) => latencyMs <= b);
      if (i < 0) i = STATS_LATENCY_BUCKETS_MS.length;
      cell.latency[i] += 1;
    }
    if (failure && cell.failures.length < MAX_FAILURE_SAMPLES) {
      cell.failures.push({ at: new Date(now).toISOString(), ...failure });
    }
  }

  /** Rows of minutes that ended before `now` (all rows when `all`), removed from the collector. */
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
      });
    }
    return rows;
  }

  /** Puts rows back after a failed append, so the next flush retries them. */
  restore(rows: DeliveryStatsRow[]): void {
    for (const r of rows) {
      const key = `${r.minute.getTime()}|${r.sourceId}|${r.destinationId}`;
      if (this.cells.has(key)) continue;
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
      });
    }
  }
}
