import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { ActionDestinationRunner, TokenStore, type ActionOutcome } from '@cdp/actions';
import { DELETE_SUBSCRIPTION_ID, deletionPayloadSchema } from '@cdp/director-rpc';
import type { Destination } from '@cdp/workspace';
import { classifyError, type DestinationDriver } from './destinations';
import type { AttemptResult } from './outcome';
import type { Job } from './job';

export interface ActionDriverOptions {
  /** Sockets per partner origin. */
  connectionsPerOrigin: number;
  /** Request timeout unless the definition sets its own (DIRECTOR_ACTIONS_TIMEOUT_MS). */
  timeoutMs: number;
  /** How long the first job of a batch waits for more (DIRECTOR_ACTIONS_BATCH_LINGER_MS). */
  batchLingerMs: number;
  /** Extra CA certificates (PEM) trusted for partners besides Node's (DIRECTOR_ACTIONS_CA_FILE). */
  caFile?: string;
  /** Tests only: every partner connection goes to this loopback `address[:port]` (DIRECTOR_ACTIONS_CONNECT_TO). */
  connectTo?: string;
}

interface Waiting {
  job: Job;
  event: unknown;
  started: number;
  resolve: (result: AttemptResult) => void;
}

interface PendingBatch {
  runner: ActionDestinationRunner;
  subscriptionId: string;
  signal: AbortSignal | undefined;
  size: number;
  jobs: Waiting[];
  timer: NodeJS.Timeout;
}

function attemptResult(outcome: ActionOutcome, started: number): AttemptResult {
  const durationMs = performance.now() - started;
  if (outcome.kind === 'error') return { kind: 'error', ...classifyError(outcome.error), durationMs };
  return { kind: 'response', status: outcome.status, retryAfter: outcome.retryAfter, excerpt: outcome.excerpt, durationMs };
}

function configError(message: string, started: number): AttemptResult {
  return { kind: 'error', code: 'config', message, durationMs: performance.now() - started };
}

/**
 * Segment's action destinations (@cdp/actions): each job's payload is the event; the job's
 * subscription names the action and its mapping. Actions with performBatch and
 * `enable_batching` in the mapping collect the jobs that are due together (up to the mapping's
 * `batch_size`, at most `batchLingerMs` for the first one) into one call, and every job gets
 * its own outcome from the partner's per-event results.
 */
export class ActionDriver implements DestinationDriver {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly agent: (url: URL) => http.Agent;
  private readonly tokens = new TokenStore();
  /** Runner per destination id, rebuilt when a reload gives the destination a new config object. */
  private readonly runners = new Map<string, { config: Destination; runner: ActionDestinationRunner }>();
  private readonly batches = new Map<string, PendingBatch>();

  constructor(private readonly options: ActionDriverOptions) {
    const common = { keepAlive: true, maxSockets: options.connectionsPerOrigin };
    this.httpAgent = new http.Agent(common);
    const ca = options.caFile === undefined ? undefined : [...tls.rootCertificates, readFileSync(options.caFile, 'utf8')];
    this.httpsAgent = new https.Agent({ ...common, ca });
    if (options.connectTo !== undefined) {
      redirect(this.httpAgent, options.connectTo);
      redirect(this.httpsAgent, options.connectTo);
    }
    // The library destroys an `agent` it was given after each response (per-request agents);
    // a function is asked for the pooled agent instead, and its destroy does nothing.
    this.agent = Object.assign((url: URL) => (url.protocol === 'https:' ? this.httpsAgent : this.httpAgent), { destroy() {} });
  }

  async deliver(job: Job, destination: Destination, signal?: AbortSignal): Promise<AttemptResult> {
    const started = performance.now();
    if (destination.kind !== 'action') return configError(`destination ${destination.id} is not an action destination`, started);
    const content = job.content;
    if (!content) throw new Error(`job ${job.id} has no content in memory`);
    let runner: ActionDestinationRunner;
    try {
      runner = this.runnerFor(destination);
    } catch (error) {
      return configError(error instanceof Error ? error.message : String(error), started);
    }
    const subscriptionId = content.subscriptionId;
    if (subscriptionId === DELETE_SUBSCRIPTION_ID) return this.deleteUser(runner, content.payload, started);
    if (!runner.hasSubscription(subscriptionId)) {
      // The config may have changed since transform matched: retried until it is back or the job expires.
      return configError(`destination ${destination.id} has no subscription ${subscriptionId} with a known action`, started);
    }
    let event: unknown;
    try {
      event = JSON.parse(content.payload);
    } catch {
      return { kind: 'response', status: 400, excerpt: 'the job payload is not JSON', durationMs: 0 };
    }
    const size = runner.batchSize(subscriptionId);
    if (size === undefined) return attemptResult(await runner.perform(subscriptionId, event as never, signal), started);
    return new Promise((resolve) =>
      this.addToBatch(runner, destination.id, subscriptionId, job, event, size, signal, { started, resolve }),
    );
  }

  /** A GDPR delete job: the definition's delete handler for its user (see DELETE_SUBSCRIPTION_ID). */
  private async deleteUser(runner: ActionDestinationRunner, payload: string, started: number): Promise<AttemptResult> {
    let parsed;
    try {
      parsed = deletionPayloadSchema.parse(JSON.parse(payload));
    } catch (error) {
      return { kind: 'response', status: 400, excerpt: `not a delete job: ${String(error).slice(0, 300)}`, durationMs: 0 };
    }
    // Nothing to send; the job still counts for the regulation (DeletionReports).
    if (!runner.deletes) return { kind: 'response', status: 200, excerpt: 'the destination has no delete handler', durationMs: 0 };
    if (!parsed.connected) return { kind: 'response', status: 200, excerpt: "no source of the user's space is connected", durationMs: 0 };
    return attemptResult(await runner.deleteUser(parsed.userId), started);
  }

  private runnerFor(destination: Destination): ActionDestinationRunner {
    const known = this.runners.get(destination.id);
    if (known && known.config === destination) return known.runner;
    const runner = new ActionDestinationRunner(destination, { agent: this.agent, timeoutMs: this.options.timeoutMs, tokens: this.tokens });
    this.runners.set(destination.id, { config: destination, runner });
    return runner;
  }

  private addToBatch(
    runner: ActionDestinationRunner,
    destinationId: string,
    subscriptionId: string,
    job: Job,
    event: unknown,
    size: number,
    signal: AbortSignal | undefined,
    waiting: Pick<Waiting, 'started' | 'resolve'>,
  ): void {
    // One batch per JobDB too: its calls are aborted with that JobDB's lock.
    const key = `${destinationId}\u0000${subscriptionId}\u0000${job.jobDbId}`;
    let batch = this.batches.get(key);
    if (!batch || batch.runner !== runner) {
      if (batch) this.flush(key, batch);
      const timer = setTimeout(() => this.flush(key, this.batches.get(key)!), this.options.batchLingerMs);
      batch = { runner, subscriptionId, signal, size, jobs: [], timer };
      this.batches.set(key, batch);
    }
    batch.jobs.push({ job, event, ...waiting });
    if (batch.jobs.length >= batch.size) this.flush(key, batch);
  }

  private flush(key: string, batch: PendingBatch): void {
    clearTimeout(batch.timer);
    if (this.batches.get(key) === batch) this.batches.delete(key);
    void (async () => {
      let outcomes: ActionOutcome[];
      try {
        outcomes = await batch.runner.performBatch(
          batch.subscriptionId,
          batch.jobs.map((w) => w.event as never),
          batch.signal,
        );
      } catch (error) {
        outcomes = batch.jobs.map(() => ({ kind: 'error', error }));
      }
      batch.jobs.forEach((w, i) => w.resolve(attemptResult(outcomes[i], w.started)));
    })();
  }

  async close(): Promise<void> {
    for (const [key, batch] of this.batches) this.flush(key, batch);
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

const LOOPBACK = /^(127\.|localhost$|::1$|\[::1\]$)/;

type CreateConnection = (options: Record<string, unknown>, callback: unknown) => unknown;

/**
 * Connections of `agent` go to `target` (`address[:port]`) whatever the URL's host; the TLS
 * server name stays the URL's host (the agent sets it before connecting), so the certificate is
 * still checked for the partner's name.
 */
function redirect(agent: http.Agent, target: string): void {
  const [address, port] = target.split(':');
  const withCreate = agent as unknown as { createConnection: CreateConnection };
  const original = withCreate.createConnection.bind(agent);
  withCreate.createConnection = (options, callback) =>
    LOOPBACK.test(String(options.host))
      ? original(options, callback) // a URL on this machine already (e.g. a local Webhook sink)
      : original({ ...options, host: address, ...(port ? { port: Number(port) } : {}) }, callback);
}
