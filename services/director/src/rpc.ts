import { RPC_JOBS_PATH, rpcBatchSchema, type RpcAnswer, type RpcBatch, type RpcJob, type RpcJobResult } from '@cdp/director-rpc';
import { createApp, finish, HttpError } from '@cdp/http';
import type { JobInsertStatus, NewJob } from '@cdp/jobdb';
import type { Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import { NoActiveJobDbError, type InsertAnswer } from './holder';
import type { JobHeaderPolicy } from './job-headers';
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
  /** The headers a job may set. */
  headers: JobHeaderPolicy;
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
      ...(j.replayId !== undefined ? { replayId: j.replayId } : {}),
      payload: JSON.stringify(j.payload),
      headers: j.headers,
      receivedAt: new Date(receivedAt),
      expiresAt: new Date(expiresAt),
    };
  });
}

/**
 * A job as it may be stored (header names lower-cased), or why it is rejected before reaching
 * the JobDB: sending it again would not help, so the caller dead-letters it.
 */
export function screenJob(job: RpcJob, workspace: Workspace, headers: JobHeaderPolicy): { job: RpcJob } | { error: string } {
  // Stored, it would be retried for its whole window under a scheduler queue of its own that
  // nothing removes; a destination added later is matched by transform after the config change.
  if (!workspace.destination(job.destinationId)) return { error: `unknown_destination: ${job.destinationId}` };
  const checked = headers.check(job.headers);
  if ('error' in checked) return checked;
  return { job: { ...job, headers: checked.headers } };
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
    const workspace = options.workspace();
    const screened = parsed.data.jobs.map((job) => screenJob(job, workspace, options.headers));
    const admitted: RpcJob[] = [];
    /** Batch index of each admitted job. */
    const positions: number[] = [];
    const results: RpcJobResult[] = [];
    screened.forEach((s, index) => {
      if ('job' in s) {
        admitted.push(s.job);
        positions.push(index);
      } else {
        results[index] = { index, status: 'rejected', error: s.error };
      }
    });
    const screenedOut = screened.length - admitted.length;
    if (screenedOut > 0) {
      const first = results.find((r) => r !== undefined)!;
      options.logger.warn({ rejected: screenedOut, firstIndex: first.index, firstError: first.error }, 'jobs rejected by the RPC checks');
    }
    let answer: InsertAnswer = { stored: 0, duplicates: 0, rejected: 0, results: [] };
    if (admitted.length > 0) {
      const jobs = toNewJobs({ jobs: admitted }, workspace, options.defaultRetryWindowMs, now());
      try {
        // Answered only after the fenced insert committed.
        answer = await options.insert(jobs);
      } catch (error) {
        if (error instanceof NoActiveJobDbError) throw new HttpError(503, 'no_active_jobdb', error.message);
        throw new HttpError(503, 'jobdb_unavailable', 'jobs could not be committed; try another director');
      }
    }
    const { stored, duplicates } = answer;
    const rejected = answer.rejected + screenedOut;
    rpcJobs.inc({ result: 'stored' }, stored);
    rpcJobs.inc({ result: 'duplicate' }, duplicates);
    if (rejected > 0) rpcJobs.inc({ result: 'rejected' }, rejected);
    if (answer.rejected > 0) {
      const first = answer.results.findIndex((r) => r.status === 'rejected');
      options.logger.warn(
        { rejected: answer.rejected, firstIndex: positions[first], firstError: errorOf(answer.results[first]) },
        'jobs rejected by the JobDB',
      );
    }
    // `results` is per job, in batch order (DESIGN.md: transform sends rejected jobs to cdp.dlq).
    answer.results.forEach((r, k) => {
      const index = positions[k];
      results[index] = r.status === 'rejected' ? { index, status: r.status, error: r.error } : { index, status: r.status };
    });
    const body: RpcAnswer = { accepted: screened.length, stored, duplicates, rejected, results };
    res.status(200).json(body);
  });
  return finish(app, options.logger);
}
