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

/** The local stack's databases (`npm start`): JobDBs and control DB named `cdp_stack_*`. */
export const STACK_DATABASE_PREFIX = 'cdp_stack_';

/**
 * Drops the databases an earlier local stack left. Its Kafka and Consul are new on every run, so
 * no director can ever adopt those JobDBs again; without this they pile up on the shared server.
 */
export async function dropStackDatabases(url = mysqlUrl()): Promise<string[]> {
  return withConnection(url, async (conn) => {
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SHOW DATABASES LIKE ?', [`${STACK_DATABASE_PREFIX.replace(/_/g, '\\_')}%`]);
    const names = rows.map((row) => String(Object.values(row)[0]));
    for (const name of names) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
    return names;
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

/**
 * The statements of one multi-statement query text (as MariaDB's general log records it: one
 * entry per query), split on `;` outside quoted strings and identifiers, trimmed, empty ones
 * dropped. Understands '…', "…" and `…` with doubled-quote and backslash escapes.
 */
export function splitSqlStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i];
    if (quote) {
      if (c === '\\' && quote !== '`') i += 1;
      else if (c === quote) {
        if (sql[i + 1] === quote) i += 1;
        else quote = undefined;
      }
    } else if (c === "'" || c === '"' || c === '`') {
      quote = c;
    } else if (c === ';') {
      statements.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  statements.push(sql.slice(start));
  return statements.map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Runs `fn` with MariaDB's general log on and returns every statement (one per entry, after
 * splitting multi-statement queries) sent by the connections that opened `database`, then
 * restores the log settings. For append-only checks against a JobDB.
 *
 * Test files run in parallel workers: a server-wide named lock makes these windows take turns,
 * so that one's "restore" cannot read another's "on" and leave the log on for every later test
 * (the general log slows every statement of the shared server).
 */
export async function statementsAgainst(database: string, fn: () => Promise<void>, url = mysqlUrl()): Promise<string[]> {
  return withConnection(url, async (admin) => {
    const [locked] = await admin.query<mysql.RowDataPacket[]>("SELECT GET_LOCK('cdp_test_general_log', 300) AS ok");
    if (Number(locked[0].ok) !== 1) throw new Error('timed out waiting for another test using the general log');
    const [vars] = await admin.query<mysql.RowDataPacket[]>('SELECT @@GLOBAL.general_log AS gl, @@GLOBAL.log_output AS lo');
    const { gl, lo } = vars[0] as { gl: number; lo: string };
    await admin.query("SET GLOBAL log_output = 'TABLE'");
    await admin.query('SET GLOBAL general_log = 1');
    const from = new Date(Date.now() - 1_000);
    try {
      await fn();
      const [threads] = await admin.query<mysql.RowDataPacket[]>(
        "SELECT DISTINCT thread_id FROM mysql.general_log WHERE event_time >= ? AND command_type IN ('Connect', 'Init DB') AND argument LIKE ?",
        [from, `%${database}%`],
      );
      if (threads.length === 0) return [];
      const [rows] = await admin.query<mysql.RowDataPacket[]>(
        "SELECT CONVERT(argument USING utf8mb4) AS sql_text FROM mysql.general_log WHERE event_time >= ? AND thread_id IN (?) AND command_type IN ('Query', 'Execute')",
        [from, threads.map((t) => Number(t.thread_id))],
      );
      return rows.flatMap((r) => splitSqlStatements(String(r.sql_text)));
    } finally {
      await admin.query(`SET GLOBAL general_log = ${Number(gl) ? 1 : 0}`);
      await admin.query('SET GLOBAL log_output = ?', [lo]);
      // The log table (CSV, scanned whole by the queries above) would otherwise grow with every run on this server.
      if (!Number(gl)) await admin.query('TRUNCATE TABLE mysql.general_log');
      await admin.query("DO RELEASE_LOCK('cdp_test_general_log')");
    }
  });
}

/** The statements that change or remove rows: UPDATE, DELETE, REPLACE, TRUNCATE, ON DUPLICATE KEY UPDATE (a SELECT … FOR UPDATE only locks). */
export function rowChangingStatements(statements: string[]): string[] {
  return statements.filter((t) => /\b(UPDATE|DELETE|REPLACE|TRUNCATE)\b/i.test(t) && !/^SELECT\b.*\bFOR UPDATE$/is.test(t));
}
