import { RPC_JOBS_PATH, rpcBatchSchema, type RpcAnswer, type RpcBatch } from '@cdp/director-rpc';
import { createApp, finish, HttpError } from '@cdp/http';
import type { JobInsertStatus, NewJob } from '@cdp/jobdb';
import type { Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import { NoActiveJobDbError, type InsertAnswer } from './holder';
import { rpcJobs } from './metrics';
import { requireToken } from './rpc-auth';

export interface RpcOptions {
  logger: Logger;
  /**
   * The token callers must send as `Authorization: Bearer <token>`; `insecure-no-token` (local
   * development only) accepts any caller.
   */
  auth: { token: string } | 'insecure-no-token';
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
  const app = createApp({
    name: 'rpc',
    logger: options.logger,
    jsonLimitBytes: options.maxBodyBytes,
    beforeBody: options.auth === 'insecure-no-token' ? [] : [requireToken(options.auth.token)],
  });
  const now = options.now ?? Date.now;
  app.post(RPC_JOBS_PATH, async (req, res) => {
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
    const body: RpcAnswer = { accepted: jobs.length, stored, duplicates, rejected, results };
    res.status(200).json(body);
  });
  return finish(app, options.logger);
}
