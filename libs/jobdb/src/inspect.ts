// What jobdb-manager reads from a JobDB to decide its lifecycle: whether it was ever held,
// since when it takes jobs, how big it is, and whether any job is still open.
import type mysql from 'mysql2/promise';
import { COUNT_OPEN_JOBS } from './jobdb';
import { checkName, withServer } from './provision';

export interface JobDbUsage {
  /** Lease rows: 0 for a JobDB no director ever took (a spare). */
  leases: number;
  /** When the first lease was taken (when it started taking jobs), or null. */
  firstLeaseAt: Date | null;
  /** InnoDB's estimate of the rows of `jobs` (information_schema; may lag by a few percent). */
  approxJobs: number;
  /** Data + index bytes of all its tables (information_schema estimate). */
  bytes: number;
}

export async function jobDbUsage(url: string, database: string): Promise<JobDbUsage> {
  checkName(database);
  return withServer(url, async (conn) => {
    const [leases] = await conn.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n, MIN(acquired_at) AS first FROM \`${database}\`.leases`);
    const [tables] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT COALESCE(SUM(data_length + index_length), 0) AS bytes,
              COALESCE(SUM(CASE WHEN table_name = 'jobs' THEN table_rows ELSE 0 END), 0) AS jobs
         FROM information_schema.tables WHERE table_schema = ?`,
      [database],
    );
    return {
      leases: Number(leases[0].n),
      firstLeaseAt: leases[0].first === null ? null : new Date(leases[0].first as Date),
      approxJobs: Number(tables[0].jobs),
      bytes: Number(tables[0].bytes),
    };
  });
}

/** Jobs whose latest transition is not final (exact count). */
export async function countOpenJobsIn(url: string, database: string): Promise<number> {
  checkName(database);
  return withServer(url, async (conn) => {
    await conn.query(`USE \`${database}\``);
    const [rows] = await conn.query<mysql.RowDataPacket[]>(COUNT_OPEN_JOBS);
    return Number(rows[0].n);
  });
}

/**
 * `received_at` of the oldest job without a final transition, or null when none is open. Jobs
 * are scanned in id (time) order and the scan stops at the first open one.
 */
export async function oldestOpenJobReceivedAt(url: string, database: string): Promise<Date | null> {
  checkName(database);
  return withServer(url, async (conn) => {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT j.received_at FROM \`${database}\`.jobs j
        WHERE NOT EXISTS (SELECT 1 FROM \`${database}\`.job_state_transitions t
                           WHERE t.job_id = j.id AND t.to_state IN ('succeeded', 'discarded', 'archived'))
        ORDER BY j.id LIMIT 1`,
    );
    return rows.length === 0 ? null : new Date(rows[0].received_at as Date);
  });
}

/** Names of the databases on the server that start with `prefix` (e.g. every JobDB of a deployment). */
export async function listDatabases(url: string, prefix: string): Promise<string[]> {
  return withServer(url, async (conn) => {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT schema_name AS name FROM information_schema.schemata');
    return rows.map((r) => String(r.name)).filter((name) => name.startsWith(prefix));
  });
}
