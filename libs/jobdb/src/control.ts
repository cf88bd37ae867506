import mysql from 'mysql2/promise';

/**
 * The `cdp_control` tables directors append delivery status to and jobdb-manager reads
 * (DESIGN.md "Delivery status"). Append-only too: one row per (minute, director, source,
 * destination).
 */
export const CONTROL_TABLES: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS delivery_stats (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    minute DATETIME NOT NULL,
    director VARCHAR(255) NOT NULL,
    source_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    destination_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    succeeded INT UNSIGNED NOT NULL,
    retried INT UNSIGNED NOT NULL,
    discarded INT UNSIGNED NOT NULL,
    archived INT UNSIGNED NOT NULL,
    latency_buckets JSON NOT NULL,
    failures JSON NOT NULL,
    KEY delivery_stats_dest (destination_id, minute),
    KEY delivery_stats_source (source_id, minute)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
];

/** Upper bounds (ms) of the latency histogram stored per row; the last bucket is +Inf. */
export const STATS_LATENCY_BUCKETS_MS = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000];

export interface DeliveryStatsRow {
  minute: Date;
  director: string;
  sourceId: string;
  destinationId: string;
  succeeded: number;
  retried: number;
  discarded: number;
  archived: number;
  /** Counts per STATS_LATENCY_BUCKETS_MS bucket plus one overflow bucket. */
  latencyBuckets: number[];
  failures: Array<{ at: string; status: number | null; error: string | null; responseExcerpt: string | null }>;
}

export async function ensureControlDatabase(url: string, database: string): Promise<void> {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) throw new Error(`invalid control database name "${database}"`);
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5_000 });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await conn.query(`USE \`${database}\``);
    for (const sql of CONTROL_TABLES) await conn.query(sql);
  } finally {
    await conn.end();
  }
}

export async function appendDeliveryStats(pool: mysql.Pool, rows: readonly DeliveryStatsRow[]): Promise<void> {
  if (rows.length === 0) return;
  await pool.query(
    'INSERT INTO delivery_stats (minute, director, source_id, destination_id, succeeded, retried, discarded, archived, latency_buckets, failures) VALUES ?',
    [
      rows.map((r) => [
        r.minute,
        r.director,
        r.sourceId,
        r.destinationId,
        r.succeeded,
        r.retried,
        r.discarded,
        r.archived,
        JSON.stringify(r.latencyBuckets),
        JSON.stringify(r.failures),
      ]),
    ],
  );
}
