import mysql from 'mysql2/promise';

const ASCII_ID = 'VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL';

/**
 * A per-minute delivery table: each row is what one director counted for one source and
 * destination in one minute, then `columns` and `keys`.
 */
function perMinuteTable(name: string, columns: string[], keys: string[]): string {
  const lines = [
    'id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY',
    'minute DATETIME NOT NULL',
    'director VARCHAR(255) NOT NULL',
    `source_id ${ASCII_ID}`,
    `destination_id ${ASCII_ID}`,
    ...columns,
    ...keys,
  ];
  return `CREATE TABLE IF NOT EXISTS ${name} (\n    ${lines.join(',\n    ')}\n  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
}

/**
 * The `cdp_control` tables directors append delivery status to and jobdb-manager reads
 * (DESIGN.md "Delivery status"). Append-only too: a director appends what it counted since its
 * last flush, so a (minute, director, source, destination) may have several rows; readers sum.
 */
export const CONTROL_TABLES: readonly string[] = [
  perMinuteTable(
    'delivery_stats',
    [
      'succeeded INT UNSIGNED NOT NULL',
      'retried INT UNSIGNED NOT NULL',
      'discarded INT UNSIGNED NOT NULL',
      'archived INT UNSIGNED NOT NULL',
      'latency_buckets JSON NOT NULL',
      'failures JSON NOT NULL',
    ],
    ['KEY delivery_stats_dest (destination_id, minute)', 'KEY delivery_stats_source (source_id, minute)'],
  ),
];

/**
 * Version 2: attempts that failed, counted by outcome (`retried`, `discarded`) and HTTP status
 * (0: no HTTP answer — timeout, connection error), so the Event Delivery API can say which codes
 * a destination answered, not only a sample of them. Appended with the delivery_stats rows.
 */
export const STATUS_CODE_TABLES: readonly string[] = [
  perMinuteTable(
    'delivery_status_codes',
    [
      'outcome VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL',
      'status SMALLINT UNSIGNED NOT NULL',
      'count INT UNSIGNED NOT NULL',
    ],
    ['KEY delivery_status_codes_dest (destination_id, minute)'],
  ),
];

/**
 * Version 3: the final outcome of each GDPR delete job (one per regulation, destination and
 * subject), whichever director ran it, so the director that finishes a destination's last one
 * sees them all and reports the destination's part of the regulation (cdp.regulation-status).
 */
export const REGULATION_DELETION_TABLES: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS regulation_deletions (
    regulation_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    destination_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    subject CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    failed TINYINT(1) NOT NULL,
    detail VARCHAR(500) NULL,
    at DATETIME(3) NOT NULL,
    PRIMARY KEY (regulation_id, destination_id, subject)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
];

/** One delete job's final outcome (`subject`: a hash of space and user, never the user id). */
export interface RegulationDeletionRow {
  regulationId: string;
  destinationId: string;
  subject: string;
  failed: boolean;
  detail: string | null;
  at: Date;
}

/**
 * Records one delete job's final outcome (a second record of the same subject, from a retried
 * report, changes nothing) and answers the destination's tally for the regulation so far. Each
 * statement commits on its own: of two directors finishing the last two subjects at once, the
 * one whose count runs last sees both.
 */
export async function recordRegulationDeletion(
  pool: mysql.Pool,
  row: RegulationDeletionRow,
): Promise<{ handled: number; failed: number; detail: string | null }> {
  await pool.query(
    'INSERT IGNORE INTO regulation_deletions (regulation_id, destination_id, subject, failed, detail, at) VALUES (?, ?, ?, ?, ?, ?)',
    [row.regulationId, row.destinationId, row.subject, row.failed ? 1 : 0, row.detail?.slice(0, 500) ?? null, row.at],
  );
  const [rows] = await pool.query<mysql.RowDataPacket[]>(
    `SELECT COUNT(*) AS handled, COALESCE(SUM(failed), 0) AS failed, MIN(CASE WHEN failed = 1 THEN detail END) AS detail
       FROM regulation_deletions WHERE regulation_id = ? AND destination_id = ?`,
    [row.regulationId, row.destinationId],
  );
  return { handled: Number(rows[0].handled), failed: Number(rows[0].failed), detail: (rows[0].detail as string | null) ?? null };
}

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
  /** Sampled failed attempts (a few per row); `outcome` is absent on rows written before it was recorded. */
  failures: Array<{
    at: string;
    outcome?: 'retried' | 'discarded';
    status: number | null;
    error: string | null;
    responseExcerpt: string | null;
  }>;
  /** Every failed attempt counted by outcome and HTTP status (0: no HTTP answer); rows of delivery_status_codes. */
  statusCounts: Array<{ outcome: 'retried' | 'discarded'; status: number; count: number }>;
}

/**
 * Forward migrations of `cdp_control`, applied in order by jobdb-manager (the schema's owner);
 * each version is recorded in `control_schema` once its statements ran. Statements are
 * idempotent, so a migration interrupted half-way is simply run again.
 */
export const CONTROL_MIGRATIONS: ReadonlyArray<{ version: number; statements: readonly string[] }> = [
  { version: 1, statements: CONTROL_TABLES },
  { version: 2, statements: STATUS_CODE_TABLES },
  { version: 3, statements: REGULATION_DELETION_TABLES },
];

/** The newest `cdp_control` schema version this code knows (the version directors wait for). */
export const CONTROL_SCHEMA_VERSION = CONTROL_MIGRATIONS[CONTROL_MIGRATIONS.length - 1].version;

const CONTROL_SCHEMA_TABLE = `CREATE TABLE IF NOT EXISTS control_schema (
  version INT NOT NULL PRIMARY KEY,
  applied_at DATETIME(3) NOT NULL
) ENGINE=InnoDB`;

function checkControlName(database: string): void {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) throw new Error(`invalid control database name "${database}"`);
}

/**
 * Creates `database` if needed and applies the migrations it lacks; returns its version. Two
 * managers starting together serialise on a named lock. Needs CREATE rights (jobdb-manager's
 * credentials).
 */
export async function migrateControlDatabase(url: string, database: string, now = new Date()): Promise<number> {
  checkControlName(database);
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5_000, timezone: 'Z' });
  const lockName = `cdp_control_migrate:${database}`;
  try {
    const [got] = await conn.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 30) AS ok', [lockName]);
    if (Number(got[0].ok) !== 1) throw new Error(`could not take the migration lock of ${database} within 30 s`);
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await conn.query(`USE \`${database}\``);
    await conn.query(CONTROL_SCHEMA_TABLE);
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT version FROM control_schema');
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const migration of CONTROL_MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const sql of migration.statements) await conn.query(sql);
      await conn.query('INSERT INTO control_schema (version, applied_at) VALUES (?, ?)', [migration.version, now]);
    }
    return CONTROL_SCHEMA_VERSION;
  } finally {
    await conn.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => undefined);
    await conn.end();
  }
}

/** MySQL/MariaDB: unknown database, table doesn't exist. */
const MISSING = new Set([1049, 1146]);

/** The highest applied `cdp_control` version, or null when the database or its schema table does not exist yet. */
export async function controlSchemaVersion(url: string, database: string): Promise<number | null> {
  checkControlName(database);
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5_000 });
  try {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT MAX(version) AS v FROM \`${database}\`.control_schema`);
    return rows[0].v === null ? null : Number(rows[0].v);
  } catch (error) {
    if (MISSING.has((error as { errno?: number }).errno ?? 0)) return null;
    throw error;
  } finally {
    await conn.end();
  }
}

/**
 * Resolves true once `database` has schema version `required` or newer (jobdb-manager migrates
 * it), polling every `intervalMs`; `onWaiting` is told the version found on each unsuccessful
 * poll. Resolves false, without waiting further, once `signal` aborts (e.g. SIGTERM during start).
 */
export async function waitForControlSchema(
  url: string,
  database: string,
  options: { required?: number; intervalMs: number; signal?: AbortSignal; onWaiting?: (found: number | null) => void },
): Promise<boolean> {
  const required = options.required ?? CONTROL_SCHEMA_VERSION;
  while (!options.signal?.aborted) {
    const found = await controlSchemaVersion(url, database);
    if (found !== null && found >= required) return true;
    options.onWaiting?.(found);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, options.intervalMs);
      options.signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
  return false;
}

/** Appends the rows and their status counts in one transaction (both or neither: a failed flush is retried whole). */
export async function appendDeliveryStats(pool: mysql.Pool, rows: readonly DeliveryStatsRow[]): Promise<void> {
  if (rows.length === 0) return;
  const codes = rows.flatMap((r) =>
    r.statusCounts.map((c) => [r.minute, r.director, r.sourceId, r.destinationId, c.outcome, c.status, c.count]),
  );
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    await conn.query(
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
    if (codes.length > 0) {
      await conn.query('INSERT INTO delivery_status_codes (minute, director, source_id, destination_id, outcome, status, count) VALUES ?', [
        codes,
      ]);
    }
    await conn.commit();
  } catch (error) {
    await conn.rollback().catch(() => undefined);
    throw error;
  } finally {
    conn.release();
  }
}

export interface PruneOptions {
  /** Rows a DELETE removes at most. */
  batchSize: number;
  /** DELETE statements in this call at most (a later call goes on). */
  maxBatches: number;
  /** Asked before each DELETE; false stops the prune there (e.g. leadership lost). */
  beforeBatch?: () => Promise<boolean>;
  /** The append-only table pruned: `delivery_stats` (default) or `delivery_status_codes` (same id/minute layout). */
  table?: 'delivery_stats' | 'delivery_status_codes';
}

export interface PruneResult {
  deleted: number;
  /** False when `maxBatches` was reached or `beforeBatch` said no, with old rows left. */
  done: boolean;
  /** `beforeBatch` said no. */
  stopped: boolean;
  /** `minute` of the first row kept in append (id) order, or null when the table is empty. */
  oldestKept: Date | null;
}

/**
 * Deletes the `delivery_stats` rows of `database` whose minute is before `before`, in append
 * (primary key) order: each DELETE covers the next `batchSize` ids, so it reads a key range, never
 * the whole table. Directors append a minute's row soon after the minute ends, so id order is
 * nearly minute order; a call stops after the first batch that is not all old, and a row appended
 * late with an older minute goes once the rows appended before it have.
 */
export async function pruneDeliveryStats(url: string, database: string, before: Date, options: PruneOptions): Promise<PruneResult> {
  checkControlName(database);
  const table = options.table ?? 'delivery_stats';
  if (table !== 'delivery_stats' && table !== 'delivery_status_codes') throw new Error(`not a delivery-status table: ${String(table)}`);
  const conn = await mysql.createConnection({ uri: url, database, connectTimeout: 5_000, timezone: 'Z' });
  try {
    let deleted = 0;
    let done = false;
    let stopped = false;
    for (let batch = 0; batch < options.maxBatches && !done; batch++) {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        `SELECT COUNT(*) AS n, MAX(id) AS last, COALESCE(SUM(minute < ?), 0) AS old FROM (SELECT id, minute FROM ${table} ORDER BY id LIMIT ?) b`,
        [before, options.batchSize],
      );
      const n = Number(rows[0].n);
      const old = Number(rows[0].old);
      if (old === 0) {
        done = true;
        break;
      }
      if (options.beforeBatch && !(await options.beforeBatch())) {
        stopped = true;
        break;
      }
      const [result] = await conn.query<mysql.ResultSetHeader>(`DELETE FROM ${table} WHERE id <= ? AND minute < ?`, [rows[0].last, before]);
      deleted += result.affectedRows;
      // Part of the batch is kept: the old rows left, if any, were appended after a kept one.
      if (old < n) done = true;
    }
    const [first] = await conn.query<mysql.RowDataPacket[]>(`SELECT minute FROM ${table} ORDER BY id LIMIT 1`);
    return { deleted, done, stopped, oldestKept: first.length === 0 ? null : new Date(first[0].minute as Date) };
  } finally {
    await conn.end();
  }
}
