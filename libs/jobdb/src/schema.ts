/**
 * JobDB tables (DESIGN.md "JobDB"). Every table is append-only: the service code issues only
 * INSERT, SELECT, CREATE and DROP. SQL runs on MySQL 8 and MariaDB 10.11.
 */

/** Job states; a job with no transition row yet is `awaiting_scheduling`. */
export const JOB_STATES = [
  'awaiting_scheduling',
  'executing',
  'succeeded',
  'discarded',
  'awaiting_retry',
  'archiving',
  'archived',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** States after which nothing more happens to a job. */
export const FINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'discarded', 'archived']);

export function isFinal(state: JobState): boolean {
  return FINAL_STATES.has(state);
}

const STATE_ENUM = `ENUM(${JOB_STATES.map((s) => `'${s}'`).join(',')})`;
// KSUIDs are case-sensitive base62: ascii_bin keeps them distinct and byte-ordered (time order).
const KSUID = 'CHAR(27) CHARACTER SET ascii COLLATE ascii_bin';
const ID = 'VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin';

/**
 * Version recorded in `jobdb_meta` when a JobDB is created. A director works only with JobDBs
 * of a version it knows (KNOWN_SCHEMA_VERSIONS) and refuses the others (checkSchemaVersion).
 * 2: transitions unique per (job, attempt, to_state), so a retried write cannot add a row twice.
 */
export const SCHEMA_VERSION = 2;
/** Versions this code reads and writes. Version 1 JobDBs are refused: drain them with a v1 director or recreate them. */
export const KNOWN_SCHEMA_VERSIONS: ReadonlySet<number> = new Set([SCHEMA_VERSION]);

export const CREATE_TABLES: readonly string[] = [
  // One row per lock acquisition; the highest id is the only lease allowed to write. A lease is
  // appended only with a fencing token (the lock key's ModifyIndex) above the latest one's.
  `CREATE TABLE IF NOT EXISTS leases (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    fencing_token BIGINT UNSIGNED NOT NULL,
    lock_index BIGINT UNSIGNED NOT NULL,
    holder VARCHAR(255) NOT NULL,
    session_id VARCHAR(64) CHARACTER SET ascii NOT NULL,
    acquired_at DATETIME(3) NOT NULL
  ) ENGINE=InnoDB`,
  `CREATE TABLE IF NOT EXISTS jobs (
    id ${KSUID} NOT NULL PRIMARY KEY,
    idempotency_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    source_id ${ID} NOT NULL,
    message_id VARCHAR(255) NOT NULL,
    destination_id ${ID} NOT NULL,
    subscription_id ${ID} NOT NULL,
    payload JSON NOT NULL,
    headers JSON NOT NULL,
    received_at DATETIME(3) NOT NULL,
    expires_at DATETIME(3) NOT NULL,
    lease_id BIGINT UNSIGNED NOT NULL,
    UNIQUE KEY jobs_idempotency (idempotency_key)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  `CREATE TABLE IF NOT EXISTS job_state_transitions (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_id ${KSUID} NOT NULL,
    from_state ${STATE_ENUM} NOT NULL,
    to_state ${STATE_ENUM} NOT NULL,
    attempt INT UNSIGNED NOT NULL,
    at DATETIME(3) NOT NULL,
    http_status SMALLINT NULL,
    error VARCHAR(1024) NULL,
    response_excerpt VARCHAR(2048) NULL,
    next_retry_at DATETIME(3) NULL,
    lease_id BIGINT UNSIGNED NOT NULL,
    -- One row per job, attempt and state: a write retried after its COMMIT reply was lost
    -- cannot append a second one (appendTransitions skips rows that exist). Also the per-job
    -- index of the "latest transition" lookups (InnoDB appends the primary key id to it).
    UNIQUE KEY transitions_job_attempt_state (job_id, attempt, to_state)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
  `CREATE TABLE IF NOT EXISTS jobdb_meta (
    schema_version INT NOT NULL,
    jobdb_id VARCHAR(128) NOT NULL,
    created_at DATETIME(3) NOT NULL
  ) ENGINE=InnoDB`,
];

export const TABLES = ['leases', 'jobs', 'job_state_transitions', 'jobdb_meta'] as const;
