import crypto from 'node:crypto';
import mysql from 'mysql2/promise';
import { isFinal, type JobState } from './schema';

/** Thrown when a write transaction finds that a newer lease exists: this holder lost the JobDB. */
export class FencedError extends Error {
  constructor(
    readonly leaseId: number,
    readonly latestLeaseId: number | null,
  ) {
    super(`JobDB write fenced: lease ${leaseId} is no longer the latest (latest ${latestLeaseId ?? 'none'})`);
    this.name = 'FencedError';
  }
}

/**
 * Thrown by takeLease when the JobDB's latest lease has a fencing token at or above the one
 * presented: the lock was acquired again after the presenting holder's acquisition, so that
 * holder is stale and must not write (nor fence the newer holder).
 */
export class StaleLeaseError extends Error {
  constructor(
    readonly fencingToken: number,
    readonly latestFencingToken: number,
  ) {
    super(`lease refused: fencing token ${fencingToken} is not above the latest lease's ${latestFencingToken}`);
    this.name = 'StaleLeaseError';
  }
}

/** What a holder records when it takes a JobDB's lease, right after acquiring its Consul lock. */
export interface LeaseRequest {
  /**
   * The lock key's ModifyIndex read right after the acquisition: Consul's raft index, which
   * never goes back (LockIndex restarts when the key is deleted and recreated).
   */
  fencingToken: number;
  /** Consul's LockIndex at acquisition (audit). */
  lockIndex: number;
  holder: string;
  sessionId: string;
}

export interface IdempotencyKey {
  sourceId: string;
  messageId: string;
  destinationId: string;
  subscriptionId: string;
  /** A forced replay's id (DESIGN.md "Director RPC"): the same event again, on purpose. */
  replayId?: string;
}

/**
 * SHA-256 of the four parts (five with a forced replay's id): a fixed 64-char unique index
 * whatever the ids' lengths. Without `replayId` the hash is the four-part one, so keys stored
 * before replays existed still match.
 */
export function idempotencyHash(key: IdempotencyKey): string {
  const parts = [key.sourceId, key.messageId, key.destinationId, key.subscriptionId];
  if (key.replayId !== undefined) parts.push(key.replayId);
  return crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

const KSUID_EPOCH_MS = 1_400_000_000_000;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const KSUID_LENGTH = 27;
// Random bytes are drawn in blocks: one randomFillSync per 256 ids instead of one per id.
const randomPool = Buffer.alloc(16 * 256);
let randomOffset = randomPool.length;

/**
 * A KSUID (27 base62 chars: a 32-bit seconds timestamp since 2014-05-13 and 128 random bits,
 * so ids sort by time). Encoded by long division over five 32-bit words: the `ksuid` package's
 * generic base conversion was the largest single cost of the RPC path.
 */
export function newJobId(now = Date.now()): string {
  if (randomOffset === randomPool.length) {
    crypto.randomFillSync(randomPool);
    randomOffset = 0;
  }
  const words = [Math.floor((now - KSUID_EPOCH_MS) / 1000) >>> 0, 0, 0, 0, 0];
  for (let i = 1; i < 5; i++, randomOffset += 4) words[i] = randomPool.readUInt32BE(randomOffset);
  return encodeKsuid(words);
}

/** Base62 of a 160-bit big-endian number given as five uint32 words, left-padded with '0'. */
export function encodeKsuid(words: number[]): string {
  const digits = new Array<string>(KSUID_LENGTH).fill('0');
  const n = words.slice();
  for (let pos = KSUID_LENGTH - 1; pos >= 0; pos--) {
    let remainder = 0;
    let nonZero = false;
    for (let i = 0; i < 5; i++) {
      // remainder < 62, so remainder * 2^32 + word < 2^38: exact in a double.
      const value = remainder * 0x1_0000_0000 + n[i];
      n[i] = Math.floor(value / 62);
      remainder = value - n[i] * 62;
      if (n[i] !== 0) nonZero = true;
    }
    digits[pos] = BASE62[remainder];
    if (!nonZero) break;
  }
  return digits.join('');
}

export interface NewJob extends IdempotencyKey {
  /** JSON text of what is sent (the event or the mapped request body). */
  payload: string;
  headers: Record<string, string>;
  receivedAt: Date;
  expiresAt: Date;
}

export interface StoredJob extends NewJob {
  id: string;
}

export interface Transition {
  jobId: string;
  from: JobState;
  to: JobState;
  attempt: number;
  at: Date;
  httpStatus?: number | null;
  error?: string | null;
  responseExcerpt?: string | null;
  nextRetryAt?: Date | null;
}

/**
 * The error of the `executing → awaiting_retry` transition a new holder writes for an attempt
 * its previous holder left unfinished. Not an outcome of the destination: a job's last outcome
 * (loadJobContents) is the one before it.
 */
export const INTERRUPTED_ERROR = 'interrupted: the previous holder stopped during this attempt';

/** What a director keeps in memory of every non-final job it holds (loadOpenJobPage). */
export interface OpenJobHead {
  id: string;
  sourceId: string;
  destinationId: string;
  expiresAt: Date;
  state: JobState;
  attempt: number;
  nextRetryAt: Date | null;
  /** Bytes of the stored payload and headers (JSON text). */
  contentBytes: number;
}

/** The rest of a job (loadJobContents): its request and the texts of its last outcome. */
export interface JobContentRow {
  messageId: string;
  subscriptionId: string;
  payload: string;
  headers: Record<string, string>;
  receivedAt: Date;
  firstAttemptAt: Date | null;
  lastStatus: number | null;
  lastError: string | null;
  lastResponseExcerpt: string | null;
}

/** A non-final job with its content, as rebuilt from the tables. */
export type OpenJob = Omit<OpenJobHead, 'contentBytes'> & JobContentRow;

/** What happened to one job of an insertJobs call. */
export type JobInsertStatus =
  | { status: 'stored' | 'duplicate' }
  | {
      status: 'rejected';
      /** Why the JobDB cannot store it; sending it again would fail the same way. */
      error: string;
    };

const STORED: JobInsertStatus = Object.freeze({ status: 'stored' });
const DUPLICATE: JobInsertStatus = Object.freeze({ status: 'duplicate' });

export interface InsertResult {
  /** Jobs stored by this call (new ids). */
  inserted: StoredJob[];
  /** Jobs whose idempotency key was already in this JobDB or earlier in the call (not stored, not to be delivered again). */
  duplicates: number;
  /** Jobs the JobDB cannot store (see JobInsertStatus); the others of the call are stored. */
  rejected: number;
  /** One per job of the call, in order. */
  results: JobInsertStatus[];
  /** Ids of inserted jobs whose first `executing` transition was committed with them (see insertJobs). */
  startedIds: ReadonlySet<string>;
}

export interface JobDbOptions {
  /** Server URL, `mysql://user:pass@host:port` (no database). */
  url: string;
  database: string;
  poolSize?: number;
}

const MAX_ERROR = 1024;
const MAX_EXCERPT = 2048;
const INSERT_CHUNK_ROWS = 500;
/**
 * Size budget of one statement and of one round trip (multi-statement query), estimated from
 * the values: far below max_allowed_packet (16 MiB on MariaDB 10.11, 64 MiB on MySQL 8) even
 * when escaping and UTF-8 make the real size a few times the estimate.
 */
const PACKET_BUDGET_BYTES = 1 << 20;
/** MySQL and MariaDB: "Subquery returns more than 1 row", how the fence check stops a batch. */
const ER_SUBQUERY_NO_1_ROW = 1242;
/** MySQL and MariaDB: "Duplicate entry … for key …". */
const ER_DUP_ENTRY = 1062;
/** MySQL and MariaDB: "Deadlock found when trying to get lock" (two inserts of overlapping keys). */
const ER_LOCK_DEADLOCK = 1213;
/**
 * A JSON column refused a value: MariaDB's JSON_VALID check (4025, "CONSTRAINT … failed"),
 * MySQL's JSON parser (3140) or a MySQL check constraint (3819). JSON.stringify's output can
 * still fail it: it escapes a lone surrogate as `\udXXX`, which both servers refuse.
 */
const JSON_REFUSED = new Set([4025, 3140, 3819]);
/** Transactions one insert or append may take when some of its rows exist already or are refused. */
const WRITE_TRIES = 3;
/** Room in one statement besides a row's JSON values (SQL text, the other columns, packet header). */
const ROW_OVERHEAD_BYTES = 4_096;

function clip(value: string | null | undefined, max: number): string | null {
  if (value === null || value === undefined) return null;
  return value.length > max ? value.slice(0, max) : value;
}

/** Non-final jobs: those whose latest transition (if any) is not final. */
export const COUNT_OPEN_JOBS = `SELECT COUNT(*) AS n FROM jobs j
   LEFT JOIN job_state_transitions t
     ON t.id = (SELECT MAX(x.id) FROM job_state_transitions x WHERE x.job_id = j.id)
  WHERE t.to_state IS NULL OR t.to_state NOT IN ('succeeded', 'discarded', 'archived')`;

/** `leases.holder` of the row that seals a drained JobDB after lease `leaseId` (see sealIfEmpty). */
export function sealHolder(leaseId: number): string {
  return `sealed:${leaseId}`;
}

/** One SQL statement with its `?` values. */
export interface Statement {
  sql: string;
  values: unknown[];
}

/** Rough size of a value once written into SQL (strings by length; escaping and UTF-8 aside). */
function estimatedBytes(value: unknown): number {
  if (typeof value === 'string') return value.length + 3;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + estimatedBytes(v) + 2, 2);
  return 24;
}

/** Exact bytes of `text` once escaped into SQL by mysql2 (UTF-8, one backslash per escaped character). */
function sqlStringBytes(text: string): number {
  let escaped = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // mysql2 (sqlstring) escapes \0 \b \t \n \r \x1a " ' and backslash.
    if (c === 0 || c === 8 || c === 9 || c === 10 || c === 13 || c === 26 || c === 34 || c === 39 || c === 92) escaped += 1;
  }
  return Buffer.byteLength(text, 'utf8') + escaped + 2;
}

function statementBytes(statement: Statement): number {
  return statement.sql.length + estimatedBytes(statement.values);
}

/**
 * Splits `items`, in order, into groups of at most `maxItems` and about PACKET_BUDGET_BYTES by
 * `size` (an item bigger than the budget goes alone).
 */
function packed<T>(items: readonly T[], size: (item: T) => number, maxItems = Infinity): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const itemBytes = size(item);
    if (group.length > 0 && (group.length >= maxItems || bytes + itemBytes > PACKET_BUDGET_BYTES)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += itemBytes;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** `INSERT … VALUES ?` of `rows`, as statements of at most INSERT_CHUNK_ROWS rows and about PACKET_BUDGET_BYTES. */
function multiRowInserts(sql: string, rows: unknown[][]): Statement[] {
  return packed(rows, estimatedBytes, INSERT_CHUNK_ROWS).map((chunk) => ({ sql, values: [chunk] }));
}

function transitionInserts(leaseId: number, transitions: readonly Transition[]): Statement[] {
  return multiRowInserts(
    'INSERT INTO job_state_transitions (job_id, from_state, to_state, attempt, at, http_status, error, response_excerpt, next_retry_at, lease_id) VALUES ?',
    transitions.map((t) => [
      t.jobId,
      t.from,
      t.to,
      t.attempt,
      t.at,
      t.httpStatus ?? null,
      clip(t.error, MAX_ERROR),
      clip(t.responseExcerpt, MAX_EXCERPT),
      t.nextRetryAt ?? null,
      leaseId,
    ]),
  );
}

/**
 * Data access to one JobDB. Writes go through fenced transactions: each first takes a shared
 * lock on the latest `leases` row and checks it is this holder's lease; a new holder takes an
 * exclusive lock on that same row before appending its lease, so the two serialize: every
 * write either commits before the new lease exists (and the new holder sees it when it
 * rebuilds) or sees the new lease and fails with FencedError.
 */
export class JobDb {
  readonly pool: mysql.Pool;
  readonly database: string;
  private maxPacket: Promise<number> | undefined;

  constructor(options: JobDbOptions) {
    this.database = options.database;
    this.pool = mysql.createPool({
      uri: options.url,
      database: options.database,
      connectionLimit: options.poolSize ?? 8,
      // fencedWrite() sends a transaction's statements in one round trip. Every value still goes
      // through placeholders; no SQL is built from input.
      multipleStatements: true,
      // MariaDB and MySQL must return the same thing: JSON as text, times in UTC.
      jsonStrings: true,
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: false,
      // mysql2 otherwise captures a stack trace on every query (for errors that name the
      // caller): 5 % of a loaded director's CPU. Logged errors keep code, SQL state, message.
      trace: false,
    });
    this.pool.on('connection', (conn) => {
      // The fencing argument relies on next-key locks, which READ COMMITTED would drop.
      conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      conn.query("SET time_zone = '+00:00'");
    });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Records a new lease for a lock just acquired and returns its id (the lease this holder
   * must present on every write). Any holder whose lease is older is fenced from now on.
   * Throws StaleLeaseError, recording nothing, unless `fencingToken` is above the latest
   * lease's: a holder whose insert runs late (a pause right after acquiring) cannot fence the
   * holder that acquired the lock after it.
   */
  async takeLease(lease: LeaseRequest, now = new Date()): Promise<number> {
    const conn = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      // Exclusive lock on the current latest lease: waits for in-flight fenced writes of the old holder.
      const [latest] = await conn.query<mysql.RowDataPacket[]>('SELECT id, fencing_token FROM leases ORDER BY id DESC LIMIT 1 FOR UPDATE');
      if (latest.length > 0 && Number(latest[0].fencing_token) >= lease.fencingToken) {
        throw new StaleLeaseError(lease.fencingToken, Number(latest[0].fencing_token));
      }
      const [res] = await conn.query<mysql.ResultSetHeader>(
        'INSERT INTO leases (fencing_token, lock_index, holder, session_id, acquired_at) VALUES (?, ?, ?, ?, ?)',
        [lease.fencingToken, lease.lockIndex, lease.holder, lease.sessionId, now],
      );
      await conn.commit();
      return res.insertId;
    } catch (error) {
      await conn.rollback().catch(() => undefined);
      throw error;
    } finally {
      conn.release();
    }
  }

  async latestLease(): Promise<{ id: number; fencingToken: number; lockIndex: number; holder: string } | null> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      'SELECT id, fencing_token, lock_index, holder FROM leases ORDER BY id DESC LIMIT 1',
    );
    if (rows.length === 0) return null;
    return {
      id: Number(rows[0].id),
      fencingToken: Number(rows[0].fencing_token),
      lockIndex: Number(rows[0].lock_index),
      holder: String(rows[0].holder),
    };
  }

  /**
   * Runs `statements` in one transaction that commits only while `leaseId` is the latest lease,
   * and returns their results. The transaction start, the lease check, the statements and the
   * COMMIT go in one round trip when they fit PACKET_BUDGET_BYTES (each round trip also waits
   * for a busy event loop and wakes the server, so fewer of them is what keeps a small write
   * fast next to big ones). The check is a scalar subquery that returns two rows, an error,
   * unless `leaseId` is the latest lease: the server stops a multi-statement query at its
   * first error, so nothing after the check runs and the transaction is rolled back.
   */
  async fencedWrite(leaseId: number, statements: readonly Statement[]): Promise<mysql.ResultSetHeader[]> {
    const all: Statement[] = [
      { sql: 'START TRANSACTION', values: [] },
      // Shared lock on this holder's lease row (the latest one, or the check below fails): a new
      // holder's exclusive lock on it waits for this commit. By primary key, so a record lock
      // only: a descending scan also locked the gap after it, where the new holder's lease goes,
      // and a write waiting for the row deadlocked with that insert.
      { sql: 'SELECT id FROM leases WHERE id = ? LOCK IN SHARE MODE', values: [leaseId] },
      // Two rows, an error, unless the latest lease is this one (newer lease, or a JobDB recreated under this name).
      {
        sql: 'SELECT (SELECT 1 FROM (SELECT 1 AS n UNION ALL SELECT 2) AS two WHERE (SELECT MAX(id) FROM leases) <> ? OR (SELECT MAX(id) FROM leases) IS NULL) AS fence',
        values: [leaseId],
      },
      ...statements,
      { sql: 'COMMIT', values: [] },
    ];
    const conn = await this.pool.getConnection();
    const results: unknown[] = [];
    try {
      // Round trips of about PACKET_BUDGET_BYTES; a bigger batch takes several inside the transaction.
      for (const trip of packed(all, statementBytes)) {
        const [result] = await conn.query(
          trip.map((t) => t.sql).join('; '),
          trip.flatMap((t) => t.values),
        );
        if (trip.length === 1) results.push(result);
        else results.push(...(result as unknown[]));
      }
    } catch (error) {
      // A connection whose transaction may still be open must not go back to the pool.
      await conn.query('ROLLBACK').then(
        () => conn.release(),
        () => conn.destroy(),
      );
      if ((error as { errno?: number }).errno === ER_SUBQUERY_NO_1_ROW) {
        const latest = await this.latestLease().catch(() => null);
        throw new FencedError(leaseId, latest?.id ?? null);
      }
      throw error;
    }
    conn.release();
    return results.slice(3, 3 + statements.length) as mysql.ResultSetHeader[];
  }

  /** The server's max_allowed_packet, read once (only when a job is big enough to come near it). */
  private maxPacketBytes(): Promise<number> {
    this.maxPacket ??= this.pool
      .query<mysql.RowDataPacket[]>('SELECT @@max_allowed_packet AS m')
      .then(([rows]) => Number(rows[0].m))
      .catch((error: unknown) => {
        this.maxPacket = undefined;
        throw error;
      });
    return this.maxPacket;
  }

  /** Why a job with these JSON texts cannot fit in one statement of a server with `maxPacket`, or null when it can. */
  private static oversize(payload: string, headers: string, maxPacket: number): string | null {
    const bytes = sqlStringBytes(payload) + sqlStringBytes(headers) + ROW_OVERHEAD_BYTES;
    return bytes > maxPacket
      ? `payload_too_large: the job needs about ${bytes} bytes in SQL, above the JobDB's max_allowed_packet (${maxPacket} bytes)`
      : null;
  }

  /**
   * Stores jobs whose idempotency key is new to this JobDB, in one fenced transaction, and
   * says per job what happened. Keys repeated inside the batch are stored once. A plain INSERT
   * (never INSERT IGNORE, which would also skip rows the server refuses for other reasons and
   * report them as duplicates): a duplicate-key error means a key is stored already or by a
   * concurrent insert; the batch's stored keys are then read and it is sent again without
   * them. Errors that would repeat are rejections of the jobs that cause them, so the caller
   * does not retry them forever: a job too big for max_allowed_packet (checked before
   * sending) and a payload or headers the JSON column refuses (found with JSON_VALID per job
   * after such an error). At most WRITE_TRIES transactions; anything else is thrown.
   *
   * `startNow` is asked, once per job to store (with its id), whether its first attempt starts
   * as soon as the commit returns; those jobs' `awaiting_scheduling → executing` transition
   * (attempt 1, at `now`) is appended in the same transaction, one commit fewer before their
   * call. `startedIds` says which were stored with it.
   */
  async insertJobs(
    leaseId: number,
    jobs: readonly NewJob[],
    now = Date.now(),
    startNow?: (job: StoredJob) => boolean,
  ): Promise<InsertResult> {
    const results = new Array<JobInsertStatus>(jobs.length);
    /** First job of the call per idempotency key, still to be stored. */
    const pending = new Map<string, { job: StoredJob; headers: string; index: number }>();
    let rejected = 0;
    const reject = (key: string, error: string) => {
      results[pending.get(key)!.index] = { status: 'rejected', error };
      pending.delete(key);
      rejected += 1;
    };
    for (let index = 0; index < jobs.length; index++) {
      const key = idempotencyHash(jobs[index]);
      if (pending.has(key)) results[index] = DUPLICATE;
      else pending.set(key, { job: { ...jobs[index], id: newJobId(now) }, headers: JSON.stringify(jobs[index].headers), index });
    }
    // At most 3 UTF-8 bytes per UTF-16 unit, doubled by escaping: below the budget no job needs a closer look.
    const big = [...pending].filter(([, p]) => (p.job.payload.length + p.headers.length) * 6 + ROW_OVERHEAD_BYTES > PACKET_BUDGET_BYTES);
    if (big.length > 0) {
      const maxPacket = await this.maxPacketBytes();
      for (const [key, p] of big) {
        const error = JobDb.oversize(p.job.payload, p.headers, maxPacket);
        if (error) reject(key, error);
      }
    }
    const starting = startNow ? [...pending.values()].filter((p) => startNow(p.job)).map((p) => p.job.id) : [];
    for (let tries = 1; pending.size > 0; tries++) {
      try {
        await this.fencedWrite(leaseId, this.jobInserts(leaseId, pending, starting, now));
        break;
      } catch (error) {
        const errno = (error as { errno?: number }).errno;
        if (tries >= WRITE_TRIES) throw error;
        if (errno === ER_DUP_ENTRY) {
          const stored = await this.storedKeys([...pending.keys()]);
          if (stored.length === 0) throw error;
          for (const key of stored) {
            results[pending.get(key)!.index] = DUPLICATE;
            pending.delete(key);
          }
        } else if (errno !== undefined && JSON_REFUSED.has(errno)) {
          const refused = await this.refusedJson(pending);
          if (refused.length === 0) throw error;
          for (const key of refused)
            reject(key, `invalid_json: the JobDB refused the payload or headers as JSON (${(error as Error).message})`);
        } else if (errno !== ER_LOCK_DEADLOCK) {
          throw error;
        }
      }
    }
    const inserted: StoredJob[] = [];
    for (const p of pending.values()) {
      results[p.index] = STORED;
      inserted.push(p.job);
    }
    const storedIds = new Set(inserted.map((j) => j.id));
    return {
      inserted,
      duplicates: jobs.length - inserted.length - rejected,
      rejected,
      results,
      startedIds: new Set(starting.filter((id) => storedIds.has(id))),
    };
  }

  /** The INSERTs of `pending`, then the `executing` rows of those of `starting` still in it. */
  private jobInserts(
    leaseId: number,
    pending: ReadonlyMap<string, { job: StoredJob; headers: string }>,
    starting: readonly string[],
    now: number,
  ): Statement[] {
    const rows: unknown[][] = [];
    const ids = new Set<string>();
    for (const [key, { job: j, headers }] of pending) {
      ids.add(j.id);
      rows.push([
        j.id,
        key,
        j.sourceId,
        j.messageId,
        j.destinationId,
        j.subscriptionId,
        j.payload,
        headers,
        j.receivedAt,
        j.expiresAt,
        leaseId,
      ]);
    }
    const inserts = multiRowInserts(
      'INSERT INTO jobs (id, idempotency_key, source_id, message_id, destination_id, subscription_id, payload, headers, received_at, expires_at, lease_id) VALUES ?',
      rows,
    );
    const started = starting.filter((id) => ids.has(id));
    const executing = packed(started, (id) => id.length + 3, INSERT_CHUNK_ROWS).map((chunk) => ({
      sql: "INSERT INTO job_state_transitions (job_id, from_state, to_state, attempt, at, lease_id) SELECT id, 'awaiting_scheduling', 'executing', 1, ?, ? FROM jobs WHERE id IN (?)",
      values: [new Date(now), leaseId, chunk],
    }));
    return [...inserts, ...executing];
  }

  /** Those of `keys` stored in this JobDB (committed). */
  private async storedKeys(keys: readonly string[]): Promise<string[]> {
    const stored: string[] = [];
    for (let i = 0; i < keys.length; i += INSERT_CHUNK_ROWS) {
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>('SELECT idempotency_key FROM jobs WHERE idempotency_key IN (?)', [
        keys.slice(i, i + INSERT_CHUNK_ROWS),
      ]);
      for (const r of rows) stored.push(String(r.idempotency_key));
    }
    return stored;
  }

  /** Keys of `pending` whose payload or headers the server's JSON_VALID refuses. */
  private async refusedJson(pending: ReadonlyMap<string, { job: StoredJob; headers: string }>): Promise<string[]> {
    const entries = [...pending];
    const refused: string[] = [];
    for (const group of packed(entries, ([, p]) => p.job.payload.length + p.headers.length + 16, INSERT_CHUNK_ROWS)) {
      const columns = group.map((_, i) => `JSON_VALID(?) AND JSON_VALID(?) AS v${i}`).join(', ');
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT ${columns}`,
        group.flatMap(([, p]) => [p.job.payload, p.headers]),
      );
      group.forEach(([key], i) => {
        if (Number(rows[0][`v${i}`]) !== 1) refused.push(key);
      });
    }
    return refused;
  }

  /**
   * Appends transitions in one fenced transaction. A transition is unique per (job, attempt,
   * to_state), so a retry of a write whose COMMIT succeeded but whose reply was lost fails with
   * a duplicate-key error and nothing of it is stored; then the rows that exist are read and
   * the others appended (their job's transitions come only from this holder, one write at a
   * time, so the read cannot miss a row in flight).
   */
  async appendTransitions(leaseId: number, transitions: readonly Transition[]): Promise<void> {
    let rows = transitions;
    for (let tries = 1; rows.length > 0; tries++) {
      try {
        await this.fencedWrite(leaseId, transitionInserts(leaseId, rows));
        return;
      } catch (error) {
        if ((error as { errno?: number }).errno !== ER_DUP_ENTRY || tries >= WRITE_TRIES) throw error;
        rows = await this.missingTransitions(rows);
      }
    }
  }

  /** `transitions` minus those stored already (and minus repeats inside the list). */
  private async missingTransitions(transitions: readonly Transition[]): Promise<Transition[]> {
    const keyOf = (jobId: string, attempt: number, to: string) => `${jobId} ${attempt} ${to}`;
    const seen = new Set<string>();
    const jobIds = [...new Set(transitions.map((t) => t.jobId))];
    for (let i = 0; i < jobIds.length; i += INSERT_CHUNK_ROWS) {
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
        'SELECT job_id, attempt, to_state FROM job_state_transitions WHERE job_id IN (?)',
        [jobIds.slice(i, i + INSERT_CHUNK_ROWS)],
      );
      for (const r of rows) seen.add(keyOf(String(r.job_id), Number(r.attempt), String(r.to_state)));
    }
    return transitions.filter((t) => {
      const key = keyOf(t.jobId, t.attempt, t.to);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  /**
   * One page of the non-final jobs, in id (time) order after `afterId`: what a director keeps
   * of every job it holds (no payload; `contentBytes` says how big the job's content is, to
   * decide whether to read it now or when the job is due, see loadJobContents). Keyset paging:
   * each page is one indexed range scan, however many jobs the JobDB holds.
   */
  async loadOpenJobPage(afterId: string | null, limit: number): Promise<OpenJobHead[]> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
      `SELECT j.id, j.source_id, j.destination_id, j.expires_at,
              LENGTH(j.payload) + LENGTH(j.headers) AS content_bytes,
              t.to_state, t.attempt, t.next_retry_at
         FROM jobs j
         LEFT JOIN job_state_transitions t
           ON t.id = (SELECT MAX(x.id) FROM job_state_transitions x WHERE x.job_id = j.id)
        WHERE j.id > ? AND (t.to_state IS NULL OR t.to_state NOT IN ('succeeded', 'discarded', 'archived'))
        ORDER BY j.id
        LIMIT ?`,
      [afterId ?? '', limit],
    );
    return rows.map((r) => ({
      id: String(r.id),
      sourceId: String(r.source_id),
      destinationId: String(r.destination_id),
      expiresAt: new Date(r.expires_at as Date),
      state: (r.to_state ?? 'awaiting_scheduling') as JobState,
      attempt: r.attempt === null ? 0 : Number(r.attempt),
      nextRetryAt: r.next_retry_at === null ? null : new Date(r.next_retry_at as Date),
      contentBytes: Number(r.content_bytes),
    }));
  }

  /**
   * The content of the jobs `ids` (those that exist): the request and its last outcome (status
   * and texts), read when a job is due whose content a director did not keep in memory.
   */
  async loadJobContents(ids: readonly string[]): Promise<Map<string, JobContentRow>> {
    const out = new Map<string, JobContentRow>();
    for (let i = 0; i < ids.length; i += INSERT_CHUNK_ROWS) {
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
        `SELECT j.id, j.message_id, j.subscription_id, j.payload, j.headers, j.received_at,
                (SELECT MIN(f.at) FROM job_state_transitions f WHERE f.job_id = j.id AND f.to_state = 'executing') AS first_attempt_at,
                o.http_status AS last_status, o.error AS last_error, o.response_excerpt AS last_excerpt
           FROM jobs j
           LEFT JOIN job_state_transitions o
             ON o.id = (SELECT MAX(y.id) FROM job_state_transitions y
                         WHERE y.job_id = j.id AND (y.http_status IS NOT NULL OR y.error IS NOT NULL) AND NOT (y.error <=> ?))
          WHERE j.id IN (?)`,
        [INTERRUPTED_ERROR, ids.slice(i, i + INSERT_CHUNK_ROWS)],
      );
      for (const r of rows) {
        out.set(String(r.id), {
          messageId: String(r.message_id),
          subscriptionId: String(r.subscription_id),
          payload: String(r.payload),
          headers: JSON.parse(String(r.headers)) as Record<string, string>,
          receivedAt: new Date(r.received_at as Date),
          firstAttemptAt: r.first_attempt_at === null ? null : new Date(r.first_attempt_at as Date),
          lastStatus: r.last_status === null ? null : Number(r.last_status),
          lastError: r.last_error === null ? null : String(r.last_error),
          lastResponseExcerpt: r.last_excerpt === null ? null : String(r.last_excerpt),
        });
      }
    }
    return out;
  }

  /**
   * Every non-final job with its content (inspection and tests: it holds them all in memory; a
   * director pages with loadOpenJobPage and reads contents within its budget).
   */
  async loadOpenJobs(): Promise<OpenJob[]> {
    const out: OpenJob[] = [];
    for (let after: string | null = null; ;) {
      const heads = await this.loadOpenJobPage(after, 5_000);
      if (heads.length === 0) return out;
      after = heads[heads.length - 1].id;
      const contents = await this.loadJobContents(heads.map((h) => h.id));
      for (const { contentBytes: _, ...head } of heads) {
        const content = contents.get(head.id);
        if (content) out.push({ ...head, ...content });
      }
    }
  }

  /**
   * Number of jobs not yet in a final state, as of a plain read: an insert still uncommitted is
   * not counted, so this alone cannot decide that a JobDB is drained (sealIfEmpty does).
   */
  async countOpenJobs(): Promise<number> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(COUNT_OPEN_JOBS);
    return Number(rows[0].n);
  }

  /**
   * The drained decision: when no job is open, appends a seal lease (`holder` = sealHolder(leaseId))
   * so that every later fenced write, this holder's included, fails with FencedError, and returns
   * true; returns false, changing nothing, while a job is open. It first takes the exclusive lock
   * on the latest lease row, which every fenced write holds shared until its commit: it waits for
   * writes in flight (an RPC insert that began before the JobDB stopped taking new jobs) and
   * counts after them, and writes that come later wait for it and then see the seal. True again
   * when this lease already sealed the JobDB; FencedError when another lease is the latest.
   */
  async sealIfEmpty(leaseId: number, now = new Date()): Promise<boolean> {
    const conn = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      const [latest] = await conn.query<mysql.RowDataPacket[]>('SELECT id, holder FROM leases ORDER BY id DESC LIMIT 1 FOR UPDATE');
      if (latest.length > 0 && String(latest[0].holder) === sealHolder(leaseId)) {
        await conn.commit();
        return true;
      }
      if (latest.length === 0 || Number(latest[0].id) !== leaseId) {
        await conn.rollback();
        throw new FencedError(leaseId, latest.length === 0 ? null : Number(latest[0].id));
      }
      // The transaction's first plain read, so its snapshot is taken now, after the lock: it
      // sees every write that committed while this waited.
      const [open] = await conn.query<mysql.RowDataPacket[]>(COUNT_OPEN_JOBS);
      if (Number(open[0].n) > 0) {
        await conn.rollback();
        return false;
      }
      await conn.query(
        'INSERT INTO leases (fencing_token, lock_index, holder, session_id, acquired_at) SELECT fencing_token, lock_index, ?, session_id, ? FROM leases WHERE id = ?',
        [sealHolder(leaseId), now, leaseId],
      );
      await conn.commit();
      return true;
    } catch (error) {
      await conn.rollback().catch(() => undefined);
      throw error;
    } finally {
      conn.release();
    }
  }

  /** Full history of one job, oldest first (tests, inspection). */
  async transitionsOf(jobId: string): Promise<Transition[]> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>('SELECT * FROM job_state_transitions WHERE job_id = ? ORDER BY id', [
      jobId,
    ]);
    return rows.map((r) => ({
      jobId: String(r.job_id),
      from: r.from_state as JobState,
      to: r.to_state as JobState,
      attempt: Number(r.attempt),
      at: new Date(r.at as Date),
      httpStatus: r.http_status === null ? null : Number(r.http_status),
      error: r.error === null ? null : String(r.error),
      responseExcerpt: r.response_excerpt === null ? null : String(r.response_excerpt),
      nextRetryAt: r.next_retry_at === null ? null : new Date(r.next_retry_at as Date),
    }));
  }
}

export { isFinal };
