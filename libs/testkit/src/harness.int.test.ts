import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { isAlive } from './process';
import { createTestDatabase, mysqlUrl, sweepTestDatabases, withConnection } from './mysql';
import { newRunId } from './run-id';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

async function databaseExists(name: string): Promise<boolean> {
  return withConnection(mysqlUrl(), async (conn) => {
    const [rows] = await conn.query('SHOW DATABASES LIKE ?', [name]);
    return (rows as unknown[]).length === 1;
  });
}

describe('MariaDB test databases (mysql2)', () => {
  it('creates and drops a uniquely named database', async () => {
    const db = await createTestDatabase('harness');
    expect(db.name).toMatch(/^cdp_t[0-9a-z]+_harness/);
    await withConnection(db.url, async (conn) => {
      await conn.query(`CREATE TABLE \`${db.name}\`.t (id INT PRIMARY KEY)`);
      await conn.query(`INSERT INTO \`${db.name}\`.t VALUES (1), (2)`);
      const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM \`${db.name}\`.t`);
      expect((rows as Array<{ n: number }>)[0].n).toBe(2);
    });
    await db.drop();
    expect(await databaseExists(db.name)).toBe(false);
  });

  it('sweeps databases of runs older than an hour and keeps recent ones', async () => {
    const old = `cdp_t${newRunId(Date.now() - 2 * 3_600_000)}_leftover`;
    const recent = `cdp_t${newRunId()}_recent`;
    await withConnection(mysqlUrl(), async (conn) => {
      await conn.query(`CREATE DATABASE \`${old}\``);
      await conn.query(`CREATE DATABASE \`${recent}\``);
    });
    try {
      const dropped = await sweepTestDatabases();
      expect(dropped).toContain(old);
      expect(await databaseExists(old)).toBe(false);
      expect(await databaseExists(recent)).toBe(true);
    } finally {
      await withConnection(mysqlUrl(), (conn) => conn.query(`DROP DATABASE IF EXISTS \`${recent}\``));
    }
  });
});

describe('infra CLI', () => {
  it('`up` starts every dependency and writes all .infra/env keys; `down` leaves no process behind', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-infra-cli-'));
    const env = { ...process.env, CDP_INFRA_DIR: dir };
    try {
      const up = await run(process.execPath, [CLI, 'up'], { env });
      const written = fs.readFileSync(path.join(dir, 'env'), 'utf8');
      const brokers = /KAFKA_BROKERS=(\S+)/.exec(written)?.[1];
      expect(brokers).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(written).toMatch(/^MYSQL_URL=mysql:\/\//m);
      for (const key of ['CONSUL_HTTP_ADDR', 'DYNAMODB_ENDPOINT', 'S3_ENDPOINT', 'S3_BUCKET', 'AWS_REGION', 'CDP_TEST_RUN']) {
        expect(written).toMatch(new RegExp(`^${key}=\\S+`, 'm'));
      }
      expect(up.stdout).toContain(`KAFKA_BROKERS=${brokers}`);
      const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { processes: Array<{ pid: number }> };
      expect(state.processes.length).toBe(4); // kafka, consul-dev, DynamoDB Local, S3Proxy
      expect(state.processes.every((p) => isAlive(p.pid))).toBe(true);

      // A second `up` reuses what runs.
      expect((await run(process.execPath, [CLI, 'up', 'kafka'], { env })).stdout).toContain('already running');

      await run(process.execPath, [CLI, 'down'], { env });
      expect(state.processes.some((p) => isAlive(p.pid))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'env'))).toBe(false);
    } finally {
      await run(process.execPath, [CLI, 'down'], { env }).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
