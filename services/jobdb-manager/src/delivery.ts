// The Event Delivery read side: what directors appended to cdp_control (delivery_stats,
// delivery_status_codes) summed per (source, destination), per minute and per window. It reads
// cdp_control only, so the history of JobDBs already dropped is there too.
import mysql from 'mysql2/promise';
import { STATS_LATENCY_BUCKETS_MS } from '@cdp/jobdb';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Outcome counts as the API names them (director states: succeeded, awaiting_retry, discarded, archived). */
export interface DeliveryCounts {
  delivered: number;
  /** Attempts that failed and were scheduled again (408, 429, 5xx, timeouts, connection errors). */
  retrying: number;
  /** Jobs given up at once (other 4xx). */
  discarded: number;
  /** Jobs whose retry window closed (sent to cdp.undelivered). */
  expired: number;
}

export interface LatencySummary {
  /** Attempts with a measured latency. */
  samples: number;
  /**
   * Upper bound (ms) of the histogram bucket holding the quantile; null when there is no sample
   * or the quantile is above the last bucket (`samples` > 0 tells which).
   */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

export interface StatusCount {
  outcome: 'retried' | 'discarded';
  /** HTTP status; 0: no HTTP answer (timeout, connection error). */
  status: number;
  count: number;
}

export interface WindowSummary extends DeliveryCounts {
  latency: LatencySummary;
  statusCodes: StatusCount[];
}

export interface PairOverview {
  sourceId: string;
  destinationId: string;
  lastHour: DeliveryCounts;
  lastDay: DeliveryCounts;
  /** Start of the latest minute with any count. */
  lastActivityAt: string;
}

export interface MinutePoint extends DeliveryCounts {
  minute: string;
}

export interface Failure {
  at: string;
  sourceId: string;
  destinationId: string;
  director: string;
  /** Absent on rows written before directors recorded it. */
  outcome: 'retried' | 'discarded' | null;
  status: number | null;
  error: string | null;
  responseExcerpt: string | null;
}

export interface DestinationDelivery {
  destinationId: string;
  sourceId: string | null;
  generatedAt: string;
  lastHour: WindowSummary;
  lastDay: WindowSummary;
  /** One point per minute, oldest first, every minute of the range (zeros where nothing happened). */
  perMinute: MinutePoint[];
  /** Sources with counts in the last day. */
  sources: string[];
}

const zero = (): DeliveryCounts => ({ delivered: 0, retrying: 0, discarded: 0, expired: 0 });

const SUMS = 'SUM(succeeded) AS delivered, SUM(retried) AS retrying, SUM(discarded) AS discarded, SUM(archived) AS expired';

function countsOf(row: mysql.RowDataPacket): DeliveryCounts {
  return {
    delivered: Number(row.delivered ?? 0),
    retrying: Number(row.retrying ?? 0),
    discarded: Number(row.discarded ?? 0),
    expired: Number(row.expired ?? 0),
  };
}

/** Quantiles of summed histograms (bucket counts per STATS_LATENCY_BUCKETS_MS plus overflow). */
export function latencySummary(buckets: readonly number[]): LatencySummary {
  const samples = buckets.reduce((a, b) => a + b, 0);
  const quantile = (q: number): number | null => {
    if (samples === 0) return null;
    const rank = Math.ceil(q * samples);
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i];
      if (seen >= rank) return i < STATS_LATENCY_BUCKETS_MS.length ? STATS_LATENCY_BUCKETS_MS[i] : null;
    }
    return null;
  };
  return { samples, p50Ms: quantile(0.5), p95Ms: quantile(0.95), p99Ms: quantile(0.99) };
}

/** Reads the Event Delivery figures from cdp_control with a small pool of its own. */
export class DeliveryStatus {
  private readonly pool: mysql.Pool;

  constructor(
    mysqlUrl: string,
    database: string,
    private readonly now: () => number = Date.now,
  ) {
    this.pool = mysql.createPool({ uri: mysqlUrl, database, connectionLimit: 3, timezone: 'Z', jsonStrings: true, trace: false });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Every (source, destination) with counts in the last day: totals for the last hour and day. */
  async overview(): Promise<PairOverview[]> {
    const now = this.now();
    const hourStart = new Date(now - HOUR_MS);
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT source_id, destination_id, MAX(minute) AS last_minute, ${SUMS},
              SUM(CASE WHEN minute >= ? THEN succeeded ELSE 0 END) AS h_delivered,
              SUM(CASE WHEN minute >= ? THEN retried ELSE 0 END) AS h_retrying,
              SUM(CASE WHEN minute >= ? THEN discarded ELSE 0 END) AS h_discarded,
              SUM(CASE WHEN minute >= ? THEN archived ELSE 0 END) AS h_expired
         FROM delivery_stats WHERE minute >= ?
        GROUP BY source_id, destination_id ORDER BY destination_id, source_id`,
      [hourStart, hourStart, hourStart, hourStart, new Date(now - DAY_MS)],
    );
    return rows.map((r) => ({
      sourceId: String(r.source_id),
      destinationId: String(r.destination_id),
      lastDay: countsOf(r),
      lastHour: {
        delivered: Number(r.h_delivered),
        retrying: Number(r.h_retrying),
        discarded: Number(r.h_discarded),
        expired: Number(r.h_expired),
      },
      lastActivityAt: new Date(r.last_minute as Date).toISOString(),
    }));
  }

  /** One destination (optionally one of its sources): windows, latency, status codes, a per-minute series of `minutes`. */
  async destination(destinationId: string, options: { sourceId?: string; minutes: number }): Promise<DestinationDelivery> {
    const now = this.now();
    const dayStart = new Date(now - DAY_MS);
    const hourStart = now - HOUR_MS;
    const currentMinute = Math.floor(now / MINUTE_MS) * MINUTE_MS;
    const seriesStart = currentMinute - (options.minutes - 1) * MINUTE_MS;
    const bySource = options.sourceId === undefined ? '' : ' AND source_id = ?';
    const args = (since: Date) => (options.sourceId === undefined ? [destinationId, since] : [destinationId, since, options.sourceId]);

    const [minutes] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT minute, ${SUMS} FROM delivery_stats WHERE destination_id = ? AND minute >= ?${bySource} GROUP BY minute`,
      args(dayStart),
    );
    const [latencyRows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT minute, latency_buckets FROM delivery_stats WHERE destination_id = ? AND minute >= ?${bySource}`,
      args(dayStart),
    );
    const [codeRows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT outcome, status, SUM(CASE WHEN minute >= ? THEN count ELSE 0 END) AS hour, SUM(count) AS day
         FROM delivery_status_codes WHERE destination_id = ? AND minute >= ?${bySource}
        GROUP BY outcome, status ORDER BY outcome, status`,
      [new Date(hourStart), ...args(dayStart)],
    );
    const [sources] = await this.pool.query<mysql.RowDataPacket[]>(
      'SELECT DISTINCT source_id FROM delivery_stats WHERE destination_id = ? AND minute >= ? ORDER BY source_id',
      [destinationId, dayStart],
    );

    const hour = zero();
    const day = zero();
    const series = new Map<number, DeliveryCounts>();
    for (const r of minutes) {
      const at = new Date(r.minute as Date).getTime();
      const c = countsOf(r);
      add(day, c);
      if (at >= hourStart) add(hour, c);
      if (at >= seriesStart) series.set(at, c);
    }
    const width = STATS_LATENCY_BUCKETS_MS.length + 1;
    const hourBuckets = new Array<number>(width).fill(0);
    const dayBuckets = new Array<number>(width).fill(0);
    for (const r of latencyRows) {
      const buckets = parseJson<number[]>(r.latency_buckets, []);
      const inHour = new Date(r.minute as Date).getTime() >= hourStart;
      for (let i = 0; i < width; i++) {
        const n = Number(buckets[i] ?? 0);
        dayBuckets[i] += n;
        if (inHour) hourBuckets[i] += n;
      }
    }
    const codes = (field: 'hour' | 'day'): StatusCount[] =>
      codeRows
        .map((r) => ({ outcome: r.outcome as StatusCount['outcome'], status: Number(r.status), count: Number(r[field]) }))
        .filter((c) => c.count > 0);
    const perMinute: MinutePoint[] = [];
    for (let at = seriesStart; at <= currentMinute; at += MINUTE_MS) {
      perMinute.push({ minute: new Date(at).toISOString(), ...(series.get(at) ?? zero()) });
    }
    return {
      destinationId,
      sourceId: options.sourceId ?? null,
      generatedAt: new Date(now).toISOString(),
      lastHour: { ...hour, latency: latencySummary(hourBuckets), statusCodes: codes('hour') },
      lastDay: { ...day, latency: latencySummary(dayBuckets), statusCodes: codes('day') },
      perMinute,
      sources: sources.map((r) => String(r.source_id)),
    };
  }

  /**
   * Sampled failures of a destination in the last day, newest first (row id, then position in the
   * row); `before` continues below the last one of a previous page.
   */
  async failures(
    destinationId: string,
    options: { sourceId?: string; limit: number; before?: { row: number; index: number } },
  ): Promise<{ items: Failure[]; next?: { row: number; index: number } }> {
    const params: unknown[] = [destinationId, new Date(this.now() - DAY_MS)];
    let where = 'destination_id = ? AND minute >= ? AND JSON_LENGTH(failures) > 0';
    if (options.sourceId !== undefined) {
      where += ' AND source_id = ?';
      params.push(options.sourceId);
    }
    const before = options.before;
    if (before !== undefined) {
      where += ' AND id <= ?';
      params.push(before.row);
    }
    // Every row holds at least one sample, and the cursor's row may hold none left: limit + 2
    // rows give limit + 1 samples whenever there are that many.
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT id, director, source_id, destination_id, failures FROM delivery_stats WHERE ${where} ORDER BY id DESC LIMIT ${options.limit + 2}`,
      params,
    );
    const items: Array<Failure & { row: number; index: number }> = [];
    for (const r of rows) {
      const row = Number(r.id);
      const samples = parseJson<Array<Record<string, unknown>>>(r.failures, []);
      // A row's newest sample is its last.
      for (let index = samples.length - 1; index >= 0; index--) {
        if (before !== undefined && row === before.row && index >= before.index) continue;
        const f = samples[index];
        items.push({
          row,
          index,
          at: String(f.at),
          sourceId: String(r.source_id),
          destinationId: String(r.destination_id),
          director: String(r.director),
          outcome: f.outcome === 'retried' || f.outcome === 'discarded' ? f.outcome : null,
          status: typeof f.status === 'number' ? f.status : null,
          error: typeof f.error === 'string' ? f.error : null,
          responseExcerpt: typeof f.responseExcerpt === 'string' ? f.responseExcerpt : null,
        });
      }
    }
    const page = items.slice(0, options.limit);
    const last = page[page.length - 1];
    return {
      items: page.map(({ row: _row, index: _index, ...f }) => f),
      next: items.length > options.limit && last !== undefined ? { row: last.row, index: last.index } : undefined,
    };
  }
}

function add(into: DeliveryCounts, c: DeliveryCounts): void {
  into.delivered += c.delivered;
  into.retrying += c.retrying;
  into.discarded += c.discarded;
  into.expired += c.expired;
}

function parseJson<T>(value: unknown, fallback: T): T {
  if (typeof value !== 'string') return (value as T) ?? fallback;
  try {
    return JSON.parse(value) as T;
  } catch {
    return fallback;
  }
}
