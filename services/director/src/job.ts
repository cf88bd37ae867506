import type { JobState } from '@cdp/jobdb';

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
