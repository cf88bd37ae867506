import type { RowDataPacket } from 'mysql2';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { ConsulKeys, createConsulClient, type ConsulClient } from '@cdp/consul';
import { mysqlUrl, rowChangingStatements, statementsAgainst, testDatabaseName, waitFor } from '@cdp/testkit';
import {
  FencedError,
  JobDb,
  SCHEMA_VERSION,
  UnknownSchemaVersionError,
  checkSchemaVersion,
  createJobDbDatabase,
  dropJobDb,
  dropJobDbDatabase,
  listJobDbs,
  provisionJobDb,
  setJobDbState,
  type NewJob,
} from './index';

const url = mysqlUrl();
let consulServer: ConsulDevServer;
let consul: ConsulClient;
const keys = new ConsulKeys(`t${Date.now().toString(36)}/`);

function job(n: number, overrides: Partial<NewJob> = {}): NewJob {
  const now = Date.now();
  return {
    sourceId: 'src',
    messageId: `m${n}`,
    destinationId: 'dst',
    subscriptionId: 'default',
    payload: JSON.stringify({ n }),
    headers: { 'x-n': String(n) },
    receivedAt: new Date(now),
    expiresAt: new Date(now + 3_600_000),
    ...overrides,
  };
}

beforeAll(async () => {
  consulServer = await startConsulDevServer({});
  consul = createConsulClient(consulServer.url);
});

afterAll(async () => {
  await consul.close();
  await consulServer.close();
});

/** Provisions (and registers) a JobDB for the enclosing describe block, dropped after it. */
function useJobDb(id: string, database: string, opened: (db: JobDb) => void): void {
  let db: JobDb;
  beforeAll(async () => {
    await provisionJobDb({ url, consul, keys, id, database });
    db = new JobDb({ url, database });
    opened(db);
  });
  afterAll(async () => {
    await db.close();
    await dropJobDb({ url, consul, keys, id, database });
  });
}

describe('JobDB provisioning and writes', () => {
  const id = `jdb${Date.now().toString(36)}`;
  const database = testDatabaseName('jobdb');
  let db: JobDb;

  useJobDb(id, database, (opened) => (db = opened));

  it('registers the JobDB in Consul as active and can move it to draining', async () => {
    const [entry] = await listJobDbs(consul, keys);
    expect(entry).toMatchObject({ id, state: 'active', dsnRef: database });
    expect(await setJobDbState(consul, keys, entry, 'draining')).toBe(true);
    // A stale modifyIndex loses the check-and-set.
    expect(await setJobDbState(consul, keys, entry, 'active')).toBe(false);
    const [after] = await listJobDbs(consul, keys);
    expect(after.state).toBe('draining');
  });

  it('stores each idempotency key once and rebuilds open jobs with their last outcome', async () => {
    const lease = await db.takeLease({ fencingToken: 10, lockIndex: 1, holder: 'a', sessionId: 's1' });
    const first = await db.insertJobs(lease, [job(1), job(2), job(2)]);
    expect(first.inserted).toHaveLength(2);
    expect(first.duplicates).toBe(1);
    const again = await db.insertJobs(lease, [job(1), job(3)]);
    expect(again.inserted.map((j) => j.messageId)).toEqual(['m3']);

    const [j1, j2] = first.inserted;
    const t0 = new Date();
    await db.appendTransitions(lease, [
      { jobId: j1.id, from: 'awaiting_scheduling', to: 'executing', attempt: 1, at: t0 },
      { jobId: j2.id, from: 'awaiting_scheduling', to: 'executing', attempt: 1, at: t0 },
      { jobId: j1.id, from: 'executing', to: 'succeeded', attempt: 1, at: t0, httpStatus: 200 },
      {
        jobId: j2.id,
        from: 'executing',
        to: 'awaiting_retry',
        attempt: 1,
        at: t0,
        httpStatus: 503,
        responseExcerpt: 'busy',
        nextRetryAt: new Date(t0.getTime() + 5_000),
      },
      { jobId: j2.id, from: 'awaiting_retry', to: 'executing', attempt: 2, at: t0 },
    ]);
    const open = await db.loadOpenJobs();
    expect(open.map((j) => j.messageId).sort()).toEqual(['m2', 'm3']);
    const m2 = open.find((j) => j.messageId === 'm2')!;
    expect(m2).toMatchObject({ state: 'executing', attempt: 2, lastStatus: 503, lastResponseExcerpt: 'busy' });
    expect(m2.firstAttemptAt?.getTime()).toBe(t0.getTime());
    expect(JSON.parse(m2.payload)).toEqual({ n: 2 });
    expect(m2.headers).toEqual({ 'x-n': '2' });
    expect(await db.countOpenJobs()).toBe(2);
  });

  it('commits the executing row of jobs that start at once with their insert, none for duplicates', async () => {
    const lease = await db.takeLease({ fencingToken: 20, lockIndex: 3, holder: 'c', sessionId: 's3' });
    await db.insertJobs(lease, [job(40)]);
    const asked: string[] = [];
    const at = Date.now();
    const result = await db.insertJobs(lease, [job(40), job(41), job(42)], at, (j) => {
      asked.push(j.messageId);
      return j.messageId !== 'm42';
    });
    expect(asked).toEqual(['m40', 'm41', 'm42']);
    expect(result.inserted.map((j) => j.messageId)).toEqual(['m41', 'm42']);
    const m41 = result.inserted[0];
    expect([...result.startedIds]).toEqual([m41.id]); // m40 was a duplicate: nothing started
    const [rows] = await db.pool.query<RowDataPacket[]>(
      "SELECT t.job_id, t.from_state, t.to_state, t.attempt, t.at, t.lease_id FROM job_state_transitions t JOIN jobs j ON j.id = t.job_id WHERE j.message_id IN ('m40', 'm41', 'm42')",
    );
    expect(rows.map((r) => ({ ...r, at: (r.at as Date).getTime() }))).toEqual([
      { job_id: m41.id, from_state: 'awaiting_scheduling', to_state: 'executing', attempt: 1, at, lease_id: lease },
    ]);
    const open = await db.loadOpenJobs();
    expect(open.find((j) => j.id === m41.id)).toMatchObject({ state: 'executing', attempt: 1 });
  });

  it('fences a holder once a newer lease exists', async () => {
    const old = await db.takeLease({ fencingToken: 30, lockIndex: 5, holder: 'old', sessionId: 's5' });
    await db.insertJobs(old, [job(10)]);
    const fresh = await db.takeLease({ fencingToken: 40, lockIndex: 6, holder: 'new', sessionId: 's6' });
    await expect(db.insertJobs(old, [job(11)])).rejects.toBeInstanceOf(FencedError);
    await expect(
      db.appendTransitions(old, [{ jobId: 'x'.repeat(27), from: 'executing', to: 'succeeded', attempt: 1, at: new Date() }]),
    ).rejects.toBeInstanceOf(FencedError);
    const ok = await db.insertJobs(fresh, [job(11)]);
    expect(ok.inserted).toHaveLength(1);
    // A lease id this JobDB never issued (it was recreated under the same name) is fenced too.
    await expect(db.insertJobs(fresh + 1_000, [job(12)])).rejects.toBeInstanceOf(FencedError);
  });

  it('a batch larger than one round trip is stored whole, and a fenced one not at all', async () => {
    const lease = await db.takeLease({ fencingToken: 50, lockIndex: 30, holder: 'big', sessionId: 's30' });
    // 1,200 jobs of ~4 KB: several statements (500 rows or ~1 MiB each) in several round trips.
    const big = (from: number) =>
      Array.from({ length: 1_200 }, (_, i) => job(from + i, { payload: JSON.stringify({ pad: 'p'.repeat(4_000) }) }));
    const stored = await db.insertJobs(lease, [...big(100_000), job(100_000)]);
    expect(stored.inserted).toHaveLength(1_200);
    expect(stored.duplicates).toBe(1);
    const again = await db.insertJobs(lease, [...big(100_000).slice(0, 700), job(99_999)]);
    expect(again.inserted.map((j) => j.messageId)).toEqual(['m99999']);
    expect(again.duplicates).toBe(700);

    await db.takeLease({ fencingToken: 60, lockIndex: 31, holder: 'next', sessionId: 's31' });
    await expect(db.insertJobs(lease, big(200_000))).rejects.toBeInstanceOf(FencedError);
    const [{ n }] = await db.pool
      .query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM jobs WHERE message_id LIKE 'm2_____'")
      .then(([rows]) => rows);
    expect(Number(n)).toBe(0);
  });

  it('a lease taken while a fenced write is open waits for it, then fences later writes', async () => {
    const a = await db.takeLease({ fencingToken: 70, lockIndex: 7, holder: 'a', sessionId: 's7' });
    // The write transaction stays open until the test lets it go: its last statement waits for
    // a named lock the test holds on another connection.
    const gate = `gate_${database}`;
    const holder = await db.pool.getConnection();
    await holder.query('SELECT GET_LOCK(?, 0)', [gate]);
    const finished: string[] = [];
    const slowWrite = db
      .fencedWrite(a, [
        { sql: 'INSERT INTO jobdb_meta (schema_version, jobdb_id, created_at) VALUES (0, ?, NOW(3))', values: ['probe'] },
        { sql: 'DO GET_LOCK(?, 60)', values: [gate] },
      ])
      .then(() => finished.push('write'));
    /** Server-side state of this JobDB's connections: what they wait for. */
    const waiting = async (sql: string) => {
      const [rows] = await db.pool.query<RowDataPacket[]>(sql, [database]);
      return Number(rows[0].n) > 0;
    };
    // The write holds its shared lease lock and waits at the gate.
    await waitFor(() => waiting("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE = 'User lock'"));
    const b = db.takeLease({ fencingToken: 80, lockIndex: 8, holder: 'b', sessionId: 's8' }).then((id) => {
      finished.push('lease');
      return id;
    });
    // The new lease's exclusive lock waits for the write's shared one (an InnoDB lock wait).
    await waitFor(() =>
      waiting(
        "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = ? AND t.trx_state = 'LOCK WAIT' AND t.trx_query LIKE '%FOR UPDATE%'",
      ),
    );
    expect(finished).toEqual([]);
    await holder.query('SELECT RELEASE_LOCK(?)', [gate]);
    holder.release();
    await Promise.all([slowWrite, b]);
    expect(finished).toEqual(['write', 'lease']); // the lease committed only after the write
    await expect(db.insertJobs(a, [job(20)])).rejects.toBeInstanceOf(FencedError);
  });
});

describe('schema version', () => {
  it('knows the version it creates and refuses another one or none', async () => {
    const database = testDatabaseName('jobdbsv');
    await createJobDbDatabase(url, database, 'sv');
    try {
      expect(await checkSchemaVersion(url, database)).toBe(SCHEMA_VERSION);
      const db = new JobDb({ url, database });
      await db.pool.query('UPDATE jobdb_meta SET schema_version = 1'); // as created by the previous release
      await expect(checkSchemaVersion(url, database)).rejects.toMatchObject({ name: 'UnknownSchemaVersionError', found: 1 });
      await db.pool.query('DROP TABLE jobdb_meta');
      await db.close();
      await expect(checkSchemaVersion(url, database)).rejects.toBeInstanceOf(UnknownSchemaVersionError);
    } finally {
      await dropJobDbDatabase(url, database);
    }
  });
});

describe('drained decision (sealIfEmpty)', () => {
  const id = `seal${Date.now().toString(36)}`;
  const database = testDatabaseName('jobdb_seal');
  let db: JobDb;

  useJobDb(id, database, (opened) => (db = opened));

  /** Whether one of this JobDB's connections is running a statement that starts with `prefix`. */
  async function running(prefix: string): Promise<boolean> {
    for (let i = 0; i < 200; i++) {
      const [rows] = await db.pool.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE CONCAT(?, '%')",
        [database, prefix],
      );
      if (Number(rows[0].n) > 0) return true;
      await new Promise((r) => setTimeout(r, 25));
    }
    return false;
  }

  it('seals only a JobDB without open jobs; the seal fences every later write until a new lease', async () => {
    const lease = await db.takeLease({ fencingToken: 90, lockIndex: 1, holder: 'a', sessionId: 's1' });
    const { inserted } = await db.insertJobs(lease, [job(1)]);
    expect(await db.sealIfEmpty(lease)).toBe(false);
    await db.appendTransitions(lease, [
      { jobId: inserted[0].id, from: 'awaiting_scheduling', to: 'executing', attempt: 1, at: new Date() },
    ]);
    await db.appendTransitions(lease, [{ jobId: inserted[0].id, from: 'executing', to: 'succeeded', attempt: 1, at: new Date() }]);
    expect(await db.sealIfEmpty(lease)).toBe(true);
    expect(await db.sealIfEmpty(lease)).toBe(true); // already sealed by this lease: the drained CAS may be retried
    await expect(db.insertJobs(lease, [job(2)])).rejects.toBeInstanceOf(FencedError);
    await expect(
      db.appendTransitions(lease, [{ jobId: inserted[0].id, from: 'succeeded', to: 'executing', attempt: 2, at: new Date() }]),
    ).rejects.toBeInstanceOf(FencedError);
    // A director adopting a sealed JobDB that was never marked drained writes again under its own lease.
    const next = await db.takeLease({ fencingToken: 100, lockIndex: 2, holder: 'b', sessionId: 's2' });
    await expect(db.sealIfEmpty(lease)).rejects.toBeInstanceOf(FencedError);
    expect((await db.insertJobs(next, [job(3)])).inserted).toHaveLength(1);
    expect(await db.sealIfEmpty(next)).toBe(false);
  });

  it('waits for an insert in flight and counts its jobs (a plain read could not see them)', async () => {
    const lease = await db.takeLease({ fencingToken: 110, lockIndex: 3, holder: 'c', sessionId: 's3' });
    const open = (await db.loadOpenJobs()).map((j) => ({
      jobId: j.id,
      from: j.state,
      to: 'discarded' as const,
      attempt: j.attempt,
      at: new Date(),
    }));
    await db.appendTransitions(lease, open);
    expect(await db.countOpenJobs()).toBe(0);
    // Another connection locks every row and gap of `jobs`: the insert below waits inside its fenced transaction.
    const blocker = await db.pool.getConnection();
    await blocker.query('START TRANSACTION');
    await blocker.query('SELECT id FROM jobs FOR UPDATE');
    const insert = db.insertJobs(lease, [job(10)]);
    expect(await running('INSERT')).toBe(true); // its fenced transaction holds the lease row shared
    expect(await db.countOpenJobs()).toBe(0); // what the plain read of 15663b1 decided on
    const seal = db.sealIfEmpty(lease);
    expect(await running('SELECT id, holder FROM leases')).toBe(true); // waits for the insert's shared lock
    await blocker.query('COMMIT');
    blocker.release();
    expect((await insert).inserted).toHaveLength(1);
    expect(await seal).toBe(false);
    expect(await db.countOpenJobs()).toBe(1);
  });
  it('a new lease while a fenced write waits for the lease row: no deadlock, the write is fenced', async () => {
    const old = await db.takeLease({ fencingToken: 1_000, lockIndex: 9, holder: 'old', sessionId: 's9' });
    // A new holder has locked the latest lease row and not yet appended its lease.
    const taking = await db.pool.getConnection();
    await taking.query('START TRANSACTION');
    await taking.query('SELECT id FROM leases ORDER BY id DESC LIMIT 1 FOR UPDATE');
    const write = db.insertJobs(old, [job(20)]).then(
      () => 'committed',
      (error: unknown) => (error instanceof FencedError ? 'fenced' : String(error)),
    );
    expect(await running('SELECT id FROM leases')).toBe(true); // the write waits for its shared lock
    // Its lease row appended now: the waiting write held no gap lock in its way (it used to: a deadlock).
    await taking.query(
      "INSERT INTO leases (fencing_token, lock_index, holder, session_id, acquired_at) VALUES (1001, 10, 'new', 's10', NOW(3))",
    );
    await taking.query('COMMIT');
    taking.release();
    expect(await write).toBe('fenced');
  });
});

describe('append-only', () => {
  it('runs no UPDATE, DELETE, REPLACE, ON DUPLICATE KEY UPDATE or TRUNCATE against a JobDB', async () => {
    const id = `ao${Date.now().toString(36)}`;
    const database = testDatabaseName('jobdbao');
    const statements = await statementsAgainst(
      database,
      async () => {
        await provisionJobDb({ url, consul, keys, id, database });
        const db = new JobDb({ url, database });
        const lease = await db.takeLease({ fencingToken: 120, lockIndex: 1, holder: 'a', sessionId: 's' });
        const { inserted } = await db.insertJobs(lease, [job(1), job(2)]);
        await db.insertJobs(lease, [job(1), job(3)], Date.now(), () => true);
        await db.appendTransitions(lease, [
          { jobId: inserted[0].id, from: 'awaiting_scheduling', to: 'executing', attempt: 1, at: new Date() },
        ]);
        await db.loadOpenJobs();
        await db.countOpenJobs();
        await db.close();
      },
      url,
    );
    expect(statements.filter((t) => /^INSERT INTO job_state_transitions/i.test(t)).length).toBeGreaterThan(0);
    expect(statements.filter((t) => /^INSERT INTO jobs /i.test(t)).length).toBeGreaterThan(0);
    expect(statements.filter((t) => /^INSERT IGNORE/i.test(t))).toEqual([]); // would hide refused rows as duplicates
    expect(statements.filter((t) => /^INSERT INTO job_state_transitions .* SELECT /is.test(t)).length).toBeGreaterThan(0);
    expect(rowChangingStatements(statements)).toEqual([]);
    await dropJobDb({ url, consul, keys, id, database });
  });
});
