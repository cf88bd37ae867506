// The transition writer against the real MariaDB: a retried transaction stores its rows once.
import type { RowDataPacket } from 'mysql2';
import { JobDb, createJobDbDatabase, dropJobDbDatabase, type Transition } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { mysqlUrl, testDatabaseName } from '@cdp/testkit';
import { TransitionWriter } from './writer';

/**
 * A JobDB connection whose first transition transaction commits and then loses its reply (the
 * connection dies after COMMIT reached the server): the writer sees an error and retries.
 */
class LostReplyJobDb extends JobDb {
  lostReplies = 0;
  override async appendTransitions(leaseId: number, transitions: readonly Transition[]): Promise<void> {
    await super.appendTransitions(leaseId, transitions);
    if (this.lostReplies === 0) {
      this.lostReplies += 1;
      throw Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST' });
    }
  }
}

const url = mysqlUrl();
const database = testDatabaseName('jdb_writer');
let db: LostReplyJobDb;

beforeAll(async () => {
  await createJobDbDatabase(url, database, 'writer');
  db = new LostReplyJobDb({ url, database, poolSize: 2 });
});

afterAll(async () => {
  await db.close();
  await dropJobDbDatabase(url, database);
});

it('a transaction retried after its COMMIT reply was lost leaves one row per job, attempt and state', async () => {
  const lease = await db.takeLease({ fencingToken: 10, lockIndex: 1, holder: 'w', sessionId: 's' });
  const now = Date.now();
  const { inserted } = await db.insertJobs(
    lease,
    ['a', 'b'].map((m) => ({
      sourceId: 'web',
      messageId: m,
      destinationId: 'hook',
      subscriptionId: 'default',
      payload: '{}',
      headers: {},
      receivedAt: new Date(now),
      expiresAt: new Date(now + 60_000),
    })),
  );
  const writer = new TransitionWriter(db, lease, createLogger({ name: 'writer-test', level: 'silent' }), 100, () => undefined);
  await writer.write(
    inserted.flatMap((j) => [
      { jobId: j.id, from: 'awaiting_scheduling' as const, to: 'executing' as const, attempt: 1, at: new Date(now) },
      { jobId: j.id, from: 'executing' as const, to: 'succeeded' as const, attempt: 1, at: new Date(now), httpStatus: 200 },
    ]),
  );
  expect(db.lostReplies).toBe(1); // the writer did see the lost reply and retried the same rows
  const [rows] = await db.pool.query<RowDataPacket[]>(
    'SELECT job_id, attempt, to_state, COUNT(*) AS n FROM job_state_transitions GROUP BY job_id, attempt, to_state ORDER BY job_id, to_state',
  );
  expect(rows.map((r) => [r.to_state, Number(r.n)])).toEqual([
    ['executing', 1],
    ['succeeded', 1],
    ['executing', 1],
    ['succeeded', 1],
  ]);
});
