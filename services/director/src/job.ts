import type { JobState, StoredJob } from '@cdp/jobdb';

/** A job as the director keeps it in memory while it is not final. */
export interface Job {
  id: string;
  /** The JobDB it lives in (writes go there, under that JobDB's lease). */
  jobDbId: string;
  sourceId: string;
  messageId: string;
  destinationId: string;
  subscriptionId: string;
  /** JSON text sent as the request body. */
  payload: string;
  headers: Record<string, string>;
  receivedAt: number;
  expiresAt: number;
  state: JobState;
  /** Attempts started so far. */
  attempt: number;
  nextRetryAt: number | null;
  firstAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  lastResponseExcerpt: string | null;
}

/** What a job's identity and request are made of (the rest is its delivery history). */
export type JobIdentity = Pick<
  Job,
  'id' | 'jobDbId' | 'sourceId' | 'messageId' | 'destinationId' | 'subscriptionId' | 'payload' | 'headers' | 'receivedAt' | 'expiresAt'
>;

/** What a job's delivery history is made of. */
export type JobHistory = Pick<Job, 'state' | 'attempt' | 'nextRetryAt' | 'firstAttemptAt' | 'lastStatus' | 'lastError' | 'lastResponseExcerpt'>;

const NO_HISTORY: JobHistory = {
  state: 'awaiting_scheduling',
  attempt: 0,
  nextRetryAt: null,
  firstAttemptAt: null,
  lastStatus: null,
  lastError: null,
  lastResponseExcerpt: null,
};

/** A newly stored job: waiting for its first attempt, no history yet. */
export function newJob(identity: JobIdentity): Job {
  return { ...identity, ...NO_HISTORY };
}

/**
 * A job stored in `jobDbId`, with its history so far (none when just inserted). One object
 * literal: a rebuild makes tens of thousands, and building them with spreads made the rebuild
 * of 40,000 jobs take 0.7 s instead of 0.27 s.
 */
export function storedJob(stored: StoredJob, jobDbId: string, history: JobHistory = NO_HISTORY): Job {
  return {
    id: stored.id,
    jobDbId,
    sourceId: stored.sourceId,
    messageId: stored.messageId,
    destinationId: stored.destinationId,
    subscriptionId: stored.subscriptionId,
    payload: stored.payload,
    headers: stored.headers,
    receivedAt: stored.receivedAt.getTime(),
    expiresAt: stored.expiresAt.getTime(),
    state: history.state,
    attempt: history.attempt,
    nextRetryAt: history.nextRetryAt,
    firstAttemptAt: history.firstAttemptAt,
    lastStatus: history.lastStatus,
    lastError: history.lastError,
    lastResponseExcerpt: history.lastResponseExcerpt,
  };
}
