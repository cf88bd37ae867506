import mysql from 'mysql2/promise';
import { registerJobDb, unregisterJobDb, type JobDbRecord } from './registry';
import type { ConsulClient } from './kv';
import { CREATE_TABLES, SCHEMA_VERSION } from './schema';

const DB_NAME = /^[A-Za-z0-9_]{1,64}$/;

function checkName(database: string): void {
  // Identifiers cannot be bound as parameters: only plain names are ever interpolated.
  if (!DB_NAME.test(database)) throw new Error(`invalid JobDB database name "${database}"`);
}

async function withServer<T>(url: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
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

export async function dropJobDbDatabase(url: string, database: string): Promise<void> {
  checkName(database);
  await withServer(url, (conn) => conn.query(`DROP DATABASE IF EXISTS \`${database}\``).then(() => undefined));
}

export interface ProvisionOptions {
  url: string;
  consul: ConsulClient;
  /** Consul prefix, default `cdp/`. */
  prefix?: string;
  id: string;
  /** Database name; default `cdp_jobdb_<id>`. */
  database?: string;
  state?: JobDbRecord['state'];
  now?: Date;
}

/** Creates a JobDB (database + tables) and registers it in Consul KV as `active` (or `state`). */
export async function provisionJobDb(options: ProvisionOptions): Promise<JobDbRecord & { id: string; database: string }> {
  const prefix = options.prefix ?? 'cdp/';
  const database = options.database ?? `cdp_jobdb_${options.id.replace(/-/g, '_')}`;
  const now = options.now ?? new Date();
  await createJobDbDatabase(options.url, database, options.id, now);
  const record: JobDbRecord = { state: options.state ?? 'active', dsnRef: database, createdAt: now.toISOString() };
  await registerJobDb(options.consul, prefix, options.id, record);
  return { ...record, id: options.id, database };
}

/**
 * Drops a JobDB and removes its keys. The caller (jobdb-manager) must hold its lock, so no
 * director can be writing to it.
 */
export async function dropJobDb(options: { url: string; consul: ConsulClient; prefix?: string; id: string; database: string }): Promise<void> {
  await dropJobDbDatabase(options.url, options.database);
  await unregisterJobDb(options.consul, options.prefix ?? 'cdp/', options.id);
}
