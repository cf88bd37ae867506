import { z } from '@cdp/config';
import { createApp, finish, HttpError } from '@cdp/http';
import type { JobInsertStatus, NewJob } from '@cdp/jobdb';
import type { Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import { NoActiveJobDbError, type InsertAnswer } from './holder';
import { rpcJobs } from './metrics';

const ID = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * One job of `POST /v1/jobs` (transform → director). The idempotency key is
 * (sourceId, messageId, destinationId, subscriptionId).
 */
export const rpcJobSchema = z.strictObject({
  sourceId: ID,
  messageId: z.string().min(1).max(255),
  destinationId: ID,
  subscriptionId: ID,
  /** The request body to send: the Segment event (webhooks) or the mapped body (action destinations). */
  // The batch arrives as JSON, so whatever is here is JSON already: only presence is checked
  // (z.json() walked every payload: a sixth of a loaded director's allocations).
  payload: z.custom<JsonValue>((value) => value !== undefined, 'required'),
  headers: z
    .record(z.string().regex(HEADER_NAME), z.string().max(8192).refine((v) => !/[\r\n]/.test(v), 'must not contain line breaks'))
    .default({}),
  /** When the pipeline received the event; defaults to now. */
  receivedAt: z.iso.datetime({ offset: true }).optional(),
  /** When retrying stops; defaults to receivedAt + the destination's retry window (4 h). */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

export const rpcBatchSchema = z.strictObject({ jobs: z.array(rpcJobSchema).min(1) });
export type RpcJob = z.infer<typeof rpcJobSchema>;
export type RpcBatch = z.infer<typeof rpcBatchSchema>;

export interface RpcOptions {
  logger: Logger;
  maxBodyBytes: number;
  maxJobs: number;
  defaultRetryWindowMs: number;
  workspace: () => Workspace;
  insert: (jobs: NewJob[]) => Promise<InsertAnswer>;
  /** False while shutting down: new batches get 503 so transform tries another director. */
  accepting: () => boolean;
  /** True when too many jobs wait in memory: back-pressure to transform. */
  overloaded?: () => boolean;
  now?: () => number;
}

export function toNewJobs(batch: RpcBatch, workspace: Workspace, defaultWindowMs: number, now: number): NewJob[] {
  return batch.jobs.map((j) => {
    const receivedAt = j.receivedAt ? Date.parse(j.receivedAt) : now;
    const window = workspace.destination(j.destinationId)?.limits.retryWindowMs ?? defaultWindowMs;
    const expiresAt = j.expiresAt ? Date.parse(j.expiresAt) : receivedAt + window;
    return {
      sourceId: j.sourceId,
      messageId: j.messageId,
      destinationId: j.destinationId,
      subscriptionId: j.subscriptionId,
      payload: JSON.stringify(j.payload),
      headers: j.headers,
      receivedAt: new Date(receivedAt),
      expiresAt: new Date(expiresAt),
    };
  });
}

function errorOf(result: JobInsertStatus | undefined): string | undefined {
  return result?.status === 'rejected' ? result.error.slice(0, 300) : undefined;
}

export function createRpcApp(options: RpcOptions): ReturnType<typeof createApp> {
  const app = createApp({ name: 'rpc', logger: options.logger, jsonLimitBytes: options.maxBodyBytes });
  const now = options.now ?? Date.now;
  app.post('/v1/jobs', async (req, res) => {
    if (!options.accepting()) throw new HttpError(503, 'shutting_down', 'director is shutting down');
    if (options.overloaded?.()) throw new HttpError(503, 'overloaded', 'director queue is full; try another director');
    const parsed = rpcBatchSchema.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, 'invalid_batch', `${issue.path.join('.') || '(body)'}: ${issue.message}`);
    }
    if (parsed.data.jobs.length > options.maxJobs) {
      throw new HttpError(413, 'batch_too_large', `at most ${options.maxJobs} jobs per batch`);
    }
    const jobs = toNewJobs(parsed.data, options.workspace(), options.defaultRetryWindowMs, now());
    let answer: InsertAnswer;
    try {
      // Answered only after the fenced insert committed.
      answer = await options.insert(jobs);
    } catch (error) {
      if (error instanceof NoActiveJobDbError) throw new HttpError(503, 'no_active_jobdb', error.message);
      throw new HttpError(503, 'jobdb_unavailable', 'jobs could not be committed; try another director');
    }
    const { stored, duplicates, rejected } = answer;
    rpcJobs.inc({ result: 'stored' }, stored);
    rpcJobs.inc({ result: 'duplicate' }, duplicates);
    if (rejected > 0) {
      rpcJobs.inc({ result: 'rejected' }, rejected);
      const first = answer.results.findIndex((r) => r.status === 'rejected');
      options.logger.warn({ rejected, firstIndex: first, firstError: errorOf(answer.results[first]) }, 'jobs rejected by the JobDB');
    }
    // `results` is per job, in order (DESIGN.md: transform sends rejected jobs to cdp.dlq).
    const results = answer.results.map((r, index) => (r.status === 'rejected' ? { index, status: r.status, error: r.error } : { index, status: r.status }));
    res.status(200).json({ accepted: jobs.length, stored, duplicates, rejected, results });
  });
  return finish(app, options.logger);
}
