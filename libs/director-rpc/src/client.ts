import { Agent, request } from 'undici';
import { sleep } from '@cdp/lifecycle';
import type { Logger } from '@cdp/log';
import type { DirectorRpcClientConfig } from '@cdp/config';
import { bearer, RPC_AUTH_HEADER, RPC_JOBS_PATH, type RpcAnswer, type RpcJobInput } from './contract';
import { DnsDiscovery, staticDiscovery, type DirectorDiscovery } from './discovery';
import { clientMetrics } from './metrics';

/** What became of one job of `send(jobs)`, at the same index as the job. */
export type JobResult = { status: 'stored' | 'duplicate' } | { status: 'rejected'; error: string };

/** A director refused a batch in a way another attempt would not change (400, 401, 413, ...). */
export class DirectorRpcRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly director: string,
    readonly body: string,
  ) {
    super(`director ${director} refused the batch: HTTP ${status} ${body.slice(0, 300)}`);
    this.name = 'DirectorRpcRefusedError';
  }
}

/** Every attempt of a batch failed with 503, a connection error or a timeout. */
export class DirectorsUnavailableError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: string,
  ) {
    super(`no director took the batch after ${attempts} attempts (last: ${lastError})`);
    this.name = 'DirectorsUnavailableError';
  }
}

export interface DirectorRpcClientOptions {
  discovery: DirectorDiscovery;
  logger: Logger;
  /** `Authorization: Bearer <token>` on every call. */
  token?: string;
  maxBatchJobs?: number;
  /** Most JSON bytes of one batch body; a single job larger than this goes alone. */
  maxBatchBytes?: number;
  /** Batches of one send() in flight at once. */
  concurrency?: number;
  timeoutMs?: number;
  /** Attempts per batch, the first included. */
  maxAttempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Keep-alive connections per director. */
  connectionsPerDirector?: number;
  /**
   * After a 503, a connection error or a timeout, a director gets no new batch for this long
   * (unless every director is in that state), so a stopped pod does not cost every other batch
   * a failed attempt. Default 5 s.
   */
  cooldownMs?: number;
  /** Math.random by default; tests fix the starting director. */
  random?: () => number;
  /** Date.now by default. */
  now?: () => number;
}

type AttemptOutcome =
  | { kind: 'ok'; answer: RpcAnswer }
  | { kind: 'retry'; outcome: 'unavailable' | 'connection_error' | 'timeout'; detail: string }
  | { kind: 'refused'; status: number; body: string };

const BATCH_OVERHEAD_BYTES = '{"jobs":[]}'.length;

/** Splits jobs (with their serialized form) into batches of at most `maxJobs` and `maxBytes` of body. */
export function splitBatches(
  serialized: readonly string[],
  maxJobs: number,
  maxBytes: number,
): Array<{ start: number; end: number; bytes: number }> {
  const batches: Array<{ start: number; end: number; bytes: number }> = [];
  let start = 0;
  let bytes = BATCH_OVERHEAD_BYTES;
  for (let i = 0; i < serialized.length; i++) {
    const size = Buffer.byteLength(serialized[i]) + (i > start ? 1 : 0); // comma
    if (i > start && (i - start >= maxJobs || bytes + size > maxBytes)) {
      batches.push({ start, end: i, bytes });
      start = i;
      bytes = BATCH_OVERHEAD_BYTES + Buffer.byteLength(serialized[i]);
    } else {
      bytes += size;
    }
  }
  if (serialized.length > start) batches.push({ start, end: serialized.length, bytes });
  return batches;
}

/**
 * Client of the directors' `POST /v1/jobs` (transform → director). `send` splits the jobs into
 * batches, spreads them round robin over the known directors and moves a batch to another
 * director on 503, a connection error or a timeout. One batch is only ever in flight at one
 * director: the next attempt starts after the previous one has failed.
 */
export class DirectorRpcClient {
  private readonly agent: Agent;
  private next: number;
  private readonly maxBatchJobs: number;
  private readonly maxBatchBytes: number;
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly cooldownMs: number;
  /** Director → until when it gets no new batch (its last attempt failed). */
  private readonly coolingUntil = new Map<string, number>();

  constructor(private readonly options: DirectorRpcClientOptions) {
    this.maxBatchJobs = options.maxBatchJobs ?? 1_000;
    this.maxBatchBytes = options.maxBatchBytes ?? 8 * 1024 * 1024;
    this.concurrency = options.concurrency ?? 4;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxAttempts = options.maxAttempts ?? 6;
    this.backoffBaseMs = options.backoffBaseMs ?? 100;
    this.backoffCapMs = options.backoffCapMs ?? 2_000;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.cooldownMs = options.cooldownMs ?? 5_000;
    // Round robin starts at a random director so that many clients do not all hit the first one.
    this.next = Math.floor(this.random() * 1_000_000);
    this.agent = new Agent({ connections: options.connectionsPerDirector ?? 8, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /**
   * Stores `jobs` at the directors; the answer has one result per job, in the caller's order.
   * Rejects with DirectorRpcRefusedError (400/401/413 ...) or DirectorsUnavailableError; batches
   * already stored stay stored (sending again is safe: the idempotency key makes them duplicates).
   */
  async send(jobs: readonly RpcJobInput[]): Promise<JobResult[]> {
    if (jobs.length === 0) return [];
    const serialized = jobs.map((j) => JSON.stringify(j));
    const batches = splitBatches(serialized, this.maxBatchJobs, this.maxBatchBytes);
    const results: JobResult[] = new Array(jobs.length);
    let nextBatch = 0;
    let failure: unknown;
    // A fixed number of workers take batches in order; after a failure none starts a new batch,
    // and send() settles only once every batch in flight has settled.
    const worker = async () => {
      while (failure === undefined && nextBatch < batches.length) {
        const batch = batches[nextBatch++];
        try {
          const answer = await this.sendBatch(`{"jobs":[${serialized.slice(batch.start, batch.end).join(',')}]}`, batch.end - batch.start);
          for (let i = 0; i < answer.results.length; i++) {
            const r = answer.results[i];
            results[batch.start + r.index] =
              r.status === 'rejected' ? { status: 'rejected', error: r.error ?? 'rejected' } : { status: r.status };
            clientMetrics().rpcJobResults.inc({ status: r.status });
          }
        } catch (error) {
          failure ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batches.length) }, worker));
    if (failure !== undefined) throw failure;
    return results;
  }

  /** Stops discovery and closes the keep-alive connections. */
  async close(): Promise<void> {
    this.options.discovery.stop();
    await this.agent.close();
  }

  private async sendBatch(body: string, count: number): Promise<RpcAnswer> {
    const failedAt = new Set<string>();
    let last = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (attempt > 1) {
        clientMetrics().rpcRetries.inc();
        await sleep(this.random() * Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** (attempt - 2)));
      }
      const director = this.pick(failedAt);
      if (director === undefined) {
        // DNS has not answered yet (or never had an address): ask again rather than wait a period.
        this.options.discovery.unreachable?.();
        last = 'no director known';
        continue;
      }
      const outcome = await this.attempt(director, body);
      if (outcome.kind === 'ok') {
        this.coolingUntil.delete(director);
        const problem = answerProblem(outcome.answer, count);
        if (problem) throw new DirectorRpcRefusedError(200, director, problem);
        return outcome.answer;
      }
      if (outcome.kind === 'refused') throw new DirectorRpcRefusedError(outcome.status, director, outcome.body);
      failedAt.add(director);
      this.coolingUntil.set(director, this.now() + this.cooldownMs);
      if (outcome.outcome === 'connection_error') this.options.discovery.unreachable?.();
      last = `${director}: ${outcome.detail}`;
      this.options.logger.warn(
        { director, outcome: outcome.outcome, detail: outcome.detail, attempt },
        'director RPC attempt failed; trying another director',
      );
    }
    throw new DirectorsUnavailableError(this.maxAttempts, last);
  }

  /**
   * The next director round robin: one this batch has not failed at and not cooling down, else
   * one this batch has not failed at, else any.
   */
  private pick(failedAt: ReadonlySet<string>): string | undefined {
    const all = this.options.discovery.directors();
    if (all.length === 0) return undefined;
    const now = this.now();
    if (this.coolingUntil.size > all.length) for (const d of this.coolingUntil.keys()) if (!all.includes(d)) this.coolingUntil.delete(d);
    const untried = all.filter((d) => !failedAt.has(d));
    const healthy = untried.filter((d) => (this.coolingUntil.get(d) ?? 0) <= now);
    const from = healthy.length > 0 ? healthy : untried.length > 0 ? untried : all;
    return from[this.next++ % from.length];
  }

  private async attempt(director: string, body: string): Promise<AttemptOutcome> {
    const started = performance.now();
    const outcome = await this.call(director, body);
    const label = outcome.kind === 'ok' ? 'ok' : outcome.kind === 'refused' ? 'refused' : outcome.outcome;
    clientMetrics().rpcRequests.inc({ outcome: label });
    clientMetrics().rpcDuration.observe({ outcome: label }, (performance.now() - started) / 1_000);
    return outcome;
  }

  private async call(director: string, body: string): Promise<AttemptOutcome> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.token !== undefined) headers[RPC_AUTH_HEADER] = bearer(this.options.token);
    // The abort closes the connection, so a timed-out call is over before the batch goes elsewhere.
    const call = new AbortController();
    const timer = setTimeout(() => call.abort(new DOMException('The operation timed out', 'TimeoutError')), this.timeoutMs);
    try {
      const res = await request(`${director}${RPC_JOBS_PATH}`, {
        dispatcher: this.agent,
        method: 'POST',
        headers,
        body,
        signal: call.signal,
      });
      const text = await res.body.text();
      if (res.statusCode === 200) {
        try {
          return { kind: 'ok', answer: JSON.parse(text) as RpcAnswer };
        } catch {
          return { kind: 'refused', status: 200, body: `unparsable answer: ${text.slice(0, 200)}` };
        }
      }
      if (res.statusCode === 503) return { kind: 'retry', outcome: 'unavailable', detail: `HTTP 503 ${text.slice(0, 200)}` };
      return { kind: 'refused', status: res.statusCode, body: text };
    } catch (error) {
      if (call.signal.aborted) return { kind: 'retry', outcome: 'timeout', detail: `no answer within ${this.timeoutMs} ms` };
      const e = error as { code?: string; message?: string };
      return { kind: 'retry', outcome: 'connection_error', detail: `${e.code ?? 'error'} ${e.message ?? String(error)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Why a 200 answer cannot be mapped back to the batch's jobs, or undefined when it can. */
function answerProblem(answer: RpcAnswer, count: number): string | undefined {
  if (!Array.isArray(answer.results) || answer.results.length !== count)
    return `answer has ${answer.results?.length} results for ${count} jobs`;
  const seen = new Set<number>();
  for (const r of answer.results) {
    if (!Number.isInteger(r.index) || r.index < 0 || r.index >= count || seen.has(r.index))
      return `answer has a bad or repeated index ${r.index}`;
    seen.add(r.index);
  }
  return undefined;
}

/**
 * A client from `directorRpcClientEnv` (transform's config): a fixed URL list, or the headless
 * Service resolved now and every DIRECTOR_RPC_DNS_REFRESH_MS. `close()` also stops the refresh.
 */
export async function createDirectorRpcClient(config: DirectorRpcClientConfig, logger: Logger): Promise<DirectorRpcClient> {
  let discovery: DirectorDiscovery;
  if (config.DIRECTOR_RPC_URLS) {
    discovery = staticDiscovery(config.DIRECTOR_RPC_URLS);
  } else {
    const dns = new DnsDiscovery({ service: config.DIRECTOR_RPC_SERVICE!, refreshMs: config.DIRECTOR_RPC_DNS_REFRESH_MS, logger });
    await dns.start();
    discovery = dns;
  }
  return new DirectorRpcClient({
    discovery,
    logger,
    token: config.DIRECTOR_RPC_TOKEN,
    maxBatchJobs: config.DIRECTOR_RPC_MAX_BATCH_JOBS,
    maxBatchBytes: config.DIRECTOR_RPC_MAX_BATCH_BYTES,
    concurrency: config.DIRECTOR_RPC_CONCURRENCY,
    timeoutMs: config.DIRECTOR_RPC_TIMEOUT_MS,
    maxAttempts: config.DIRECTOR_RPC_MAX_ATTEMPTS,
    backoffBaseMs: config.DIRECTOR_RPC_BACKOFF_BASE_MS,
    backoffCapMs: config.DIRECTOR_RPC_BACKOFF_CAP_MS,
    cooldownMs: config.DIRECTOR_RPC_COOLDOWN_MS,
  });
}
