import mysql from 'mysql2/promise';
import { ConsulKeys, type ConsulClient, type JobDbRecord } from '@cdp/consul';
import { registerJobDb, unregisterJobDb } from './registry';
import { CREATE_TABLES, KNOWN_SCHEMA_VERSIONS, SCHEMA_VERSION } from './schema';

const DB_NAME = /^[A-Za-z0-9_]{1,64}$/;

export function checkName(database: string): void {
  // Identifiers cannot be bound as parameters: only plain names are ever interpolated.
  if (!DB_NAME.test(database)) throw new Error(`invalid JobDB database name "${database}"`);
}

export async function withServer<T>(url: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5_000, timezone: 'Z' });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Creates the database and its tables (idempotent: `IF NOT EXISTS` everywhere). */
export async function createJobDbDatabase(url: string, database: string, jobDbId: string, now = new Date()): Promise<void> {
  checkName(database);
  await withServer(url, async (conn) => {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    await conn.query(`USE \`${database}\``);
    for (const sql of CREATE_TABLES) await conn.query(sql);
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM jobdb_meta');
    if (Number(rows[0].n) === 0) {
      await conn.query('INSERT INTO jobdb_meta (schema_version, jobdb_id, created_at) VALUES (?, ?, ?)', [SCHEMA_VERSION, jobDbId, now]);
    }
  });
}

/** A JobDB whose schema version this code does not know (or that has none): not to be used. */
export class UnknownSchemaVersionError extends Error {
  constructor(
    readonly database: string,
    readonly found: number | null,
  ) {
    super(
      `JobDB ${database} has schema version ${found ?? 'none'}; this code knows ${[...KNOWN_SCHEMA_VERSIONS].join(', ')}` +
        ' (drain it with a director of its version, or recreate it)',
    );
    this.name = 'UnknownSchemaVersionError';
  }
}

/** MySQL and MariaDB: "Table doesn't exist". */
const ER_NO_SUCH_TABLE = 1146;

/**
 * Returns the JobDB's schema version, or throws UnknownSchemaVersionError when this code does
 * not know it. A director runs this before taking a JobDB's lock: writing a JobDB of another
 * version could break its invariants, and migrating is jobdb-manager's job, never a director's.
 * The version is the highest recorded in `jobdb_meta` (a forward migration appends its row).
 */
export async function checkSchemaVersion(url: string, database: string): Promise<number> {
  checkName(database);
  const found = await withServer(url, async (conn) => {
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT MAX(schema_version) AS v FROM \`${database}\`.jobdb_meta`);
      return rows[0].v === null ? null : Number(rows[0].v);
    } catch (error) {
      if ((error as { errno?: number }).errno === ER_NO_SUCH_TABLE) return null;
      throw error;
    }
  });
  if (found === null || !KNOWN_SCHEMA_VERSIONS.has(found)) throw new UnknownSchemaVersionError(database, found);
  return found;
}

export async function dropJobDbDatabase(url: string, database: string): Promise<void> {
  checkName(database);
  await withServer(url, (conn) => conn.query(`DROP DATABASE IF EXISTS \`${database}\``).then(() => undefined));
}

export interface ProvisionOptions {
  url: string;
  consul: ConsulClient;
  /** Consul key layout; default the `cdp/` prefix. */
  keys?: ConsulKeys;
  id: string;
  /** Database name; default `cdp_jobdb_<id>`. */
  database?: string;
  state?: JobDbRecord['state'];
  now?: Date;
}

/** Creates a JobDB (database + tables) and registers it in Consul KV as `active` (or `state`). */
export async function provisionJobDb(options: ProvisionOptions): Promise<JobDbRecord & { id: string; database: string }> {
  const database = options.database ?? `cdp_jobdb_${options.id.replace(/-/g, '_')}`;
  const now = options.now ?? new Date();
  await createJobDbDatabase(options.url, database, options.id, now);
  const record: JobDbRecord = { state: options.state ?? 'active', dsnRef: database, createdAt: now.toISOString() };
  await registerJobDb(options.consul, options.keys ?? new ConsulKeys(), options.id, record);
  return { ...record, id: options.id, database };
}

/**
 * Drops a JobDB and removes its keys. The caller (jobdb-manager) must hold its lock, so no
 * director can be writing to it.
 */
export async function dropJobDb(options: {
  url: string;
  consul: ConsulClient;
  keys?: ConsulKeys;
  id: string;
  database: string;
}): Promise<void> {
  await dropJobDbDatabase(options.url, options.database);
  await unregisterJobDb(options.consul, options.keys ?? new ConsulKeys(), options.id);
}
