import type { JobContentRow, JobState, StoredJob } from '@cdp/jobdb';

/**
 * A job as the director keeps it in memory while it is not final: what scheduling needs, plus
 * its content when the memory budget holds it (MemoryBudget). A job whose `content` is null is
 * read back from its JobDB when it is due (ContentReader).
 */
export interface Job {
  id: string;
  /** The JobDB it lives in (writes go there, under that JobDB's lease). */
  jobDbId: string;
  sourceId: string;
  destinationId: string;
  expiresAt: number;
  state: JobState;
  /** Attempts started so far. */
  attempt: number;
  nextRetryAt: number | null;
  content: JobContent | null;
  /** Bytes of `content` counted in the memory budget (0 while it is not held). */
  contentBytes: number;
}

/** The part of a job that may stay in MySQL until the job is due: its request and its last outcome's texts. */
export interface JobContent {
  messageId: string;
  subscriptionId: string;
  /** JSON text sent as the request body. */
  payload: string;
  headers: Record<string, string>;
  receivedAt: number;
  firstAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  lastResponseExcerpt: string | null;
}

/** What a new job is made of. */
export type JobIdentity = Pick<Job, 'id' | 'jobDbId' | 'sourceId' | 'destinationId' | 'expiresAt'> &
  Pick<JobContent, 'messageId' | 'subscriptionId' | 'payload' | 'headers' | 'receivedAt'>;

/** A newly stored job: waiting for its first attempt, no history yet, its content in memory. */
export function newJob(identity: JobIdentity): Job {
  return {
    id: identity.id,
    jobDbId: identity.jobDbId,
    sourceId: identity.sourceId,
    destinationId: identity.destinationId,
    expiresAt: identity.expiresAt,
    state: 'awaiting_scheduling',
    attempt: 0,
    nextRetryAt: null,
    content: {
      messageId: identity.messageId,
      subscriptionId: identity.subscriptionId,
      payload: identity.payload,
      headers: identity.headers,
      receivedAt: identity.receivedAt,
      firstAttemptAt: null,
      lastStatus: null,
      lastError: null,
      lastResponseExcerpt: null,
    },
    contentBytes: 0,
  };
}

/** A job just stored in `jobDbId` by an RPC insert. */
export function storedJob(stored: StoredJob, jobDbId: string): Job {
  return newJob({
    id: stored.id,
    jobDbId,
    sourceId: stored.sourceId,
    destinationId: stored.destinationId,
    expiresAt: stored.expiresAt.getTime(),
    messageId: stored.messageId,
    subscriptionId: stored.subscriptionId,
    payload: stored.payload,
    headers: stored.headers,
    receivedAt: stored.receivedAt.getTime(),
  });
}

/** A content as read from the JobDB. */
export function jobContent(row: JobContentRow): JobContent {
  return {
    messageId: row.messageId,
    subscriptionId: row.subscriptionId,
    payload: row.payload,
    headers: row.headers,
    receivedAt: row.receivedAt.getTime(),
    firstAttemptAt: row.firstAttemptAt === null ? null : row.firstAttemptAt.getTime(),
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    lastResponseExcerpt: row.lastResponseExcerpt,
  };
}
