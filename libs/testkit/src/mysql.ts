import mysql from 'mysql2/promise';
import { runAgeMs, SWEEP_AGE_MS, testDatabaseName } from './run-id';

/** The MariaDB already running on the machine (root, no password). */
export const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306';

export function mysqlUrl(): string {
  return process.env.MYSQL_URL ?? DEFAULT_MYSQL_URL;
}

export async function withConnection<T>(url: string, fn: (conn: mysql.Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: url, connectTimeout: 5_000 });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Drops `cdp_t<run>_*` databases whose run started more than an hour ago. */
export async function sweepTestDatabases(url = mysqlUrl(), now = Date.now()): Promise<string[]> {
  return withConnection(url, async (conn) => {
    const [rows] = await conn.query<mysql.RowDataPacket[]>("SHOW DATABASES LIKE 'cdp\\_t%'");
    const dropped: string[] = [];
    for (const row of rows) {
      const name = String(Object.values(row)[0]);
      const run = /^cdp_t([0-9a-z]+?)_/.exec(name)?.[1];
      const age = run ? runAgeMs(run, now) : undefined;
      if (age !== undefined && age > SWEEP_AGE_MS) {
        await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
        dropped.push(name);
      }
    }
    return dropped;
  });
}

export interface TestDatabase {
  name: string;
  /** Server URL (without database); pass `name` separately. */
  url: string;
  drop(): Promise<void>;
}

/** Creates a uniquely named database for one test; `drop()` it in afterAll. */
export async function createTestDatabase(label: string, url = mysqlUrl()): Promise<TestDatabase> {
  const name = testDatabaseName(label);
  await withConnection(url, (conn) => conn.query(`CREATE DATABASE \`${name}\``));
  return {
    name,
    url,
    drop: () => withConnection(url, (conn) => conn.query(`DROP DATABASE IF EXISTS \`${name}\``)).then(() => undefined),
  };
}
