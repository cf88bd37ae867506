import { DirectorRpcRefusedError, DirectorsUnavailableError, type JobResult, type RpcJobInput } from '@cdp/director-rpc';
import { decodeEnvelope, type Envelope } from '@cdp/events';
import { RetriableError, type BatchContext, type Decoded, type InboundMessage } from '@cdp/kafka';
import type { Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import { jobsFor } from './jobs';
import { transformMetrics } from './metrics';
import { route, type RouteOptions } from './routing';
import type { ViolationSample, ViolationSamples } from './violations';

/** What the fan-out needs of the RPC client (DirectorRpcClient). */
export interface JobSender {
  send(jobs: readonly RpcJobInput[]): Promise<JobResult[]>;
}

export function decode(message: InboundMessage): Envelope {
  return decodeEnvelope(message.value);
}

/**
 * A send failure as the Kafka worker should treat it. Retriable (the chunk waits and is sent
 * again, without limit, nothing skipped): no director took the jobs, or a director answered
 * 401/403 (a token out of step: an operator fixes it, the events must not go to the DLQ) or
 * 5xx. Anything else (400, 413: a job the director will never take) is left as is, so the
 * worker retries the chunk one message at a time and sends the one that keeps failing to
 * cdp.dlq.
 */
export function sendFailure(error: unknown): unknown {
  if (error instanceof DirectorsUnavailableError) return new RetriableError(error.message, { cause: error });
  if (error instanceof DirectorRpcRefusedError && (error.status === 401 || error.status === 403 || error.status >= 500)) {
    return new RetriableError(error.message, { cause: error });
  }
  return error;
}

/** How many of `items` share each label tuple `labels` gives (in first-seen order). */
function tally<T, L extends string[]>(items: readonly T[], labels: (item: T, index: number) => L): [L, number][] {
  const counts = new Map<string, [L, number]>();
  items.forEach((item, i) => {
    const l = labels(item, i);
    const key = l.join('\u0000');
    const entry = counts.get(key);
    if (entry) entry[1]++;
    else counts.set(key, [l, 1]);
  });
  return [...counts.values()];
}

/**
 * The work for one chunk of one partition of cdp.identified: route each event, send every job of
 * the chunk through the RPC client, and resolve only once each job has a result (so the worker
 * commits the chunk's offsets only then). A job a director rejected sends its event to cdp.dlq
 * with the error, committed with the chunk; the event's other jobs stay stored.
 */
export class FanOut {
  /** False while no director takes jobs (for /readyz); true again after a send succeeds. */
  directorsAccepting = true;
  lastFailure: string | undefined;

  constructor(
    private readonly sender: JobSender,
    private readonly workspace: () => Workspace,
    private readonly logger: Logger,
    /** Regulation lookup and code runner for routing. */
    private readonly routeOptions: RouteOptions = {},
    /** Where tracking-plan violations are sampled for the admin API. */
    private readonly samples?: ViolationSamples,
  ) {}

  readiness(): { ok: boolean; detail: string } {
    return this.directorsAccepting
      ? { ok: true, detail: 'directors take jobs' }
      : { ok: false, detail: `no director takes jobs: ${this.lastFailure}` };
  }

  async handle(items: Decoded<Envelope>[], ctx: BatchContext): Promise<void> {
    const workspace = this.workspace(); // one config version for the whole chunk
    const jobs: RpcJobInput[] = [];
    const owner: number[] = []; // job index → item index
    const skipped: string[] = [];
    const violations: ViolationSample[] = [];
    const at = new Date().toISOString();
    let notRun = 0;
    items.forEach((item, i) => {
      const routing = route(item.value, workspace, this.routeOptions);
      for (const job of jobsFor(item.value, routing.routes)) {
        jobs.push(job);
        owner.push(i);
      }
      for (const s of routing.skipped) skipped.push(s.reason);
      if (routing.dropped) skipped.push(routing.dropped.reason);
      notRun += routing.transformationsNotRun;
      if (routing.plan) {
        const { id: planId, event, violations: found } = routing.plan;
        for (const v of found) {
          violations.push({
            ...v,
            at,
            sourceId: item.value.sourceId,
            planId,
            messageId: item.value.messageId,
            type: item.value.message.type,
            event,
          });
        }
      }
    });

    let results: JobResult[];
    try {
      results = await this.sender.send(jobs);
    } catch (error) {
      const failure = sendFailure(error);
      if (failure instanceof RetriableError) {
        this.directorsAccepting = false;
        this.lastFailure = failure.message;
        transformMetrics.directorsAccepting.set(0);
        transformMetrics.unavailable.inc();
      }
      throw failure;
    }
    this.directorsAccepting = true;
    transformMetrics.directorsAccepting.set(1);

    // Counted once the chunk is through, so a retried chunk is not counted twice; summed per
    // label set first (one labelled inc per chunk and label set, not per job: prom-client hashes
    // the labels on every call).
    for (const [[reason], n] of tally(skipped, (r) => [r])) transformMetrics.skipped.labels(reason).inc(n);
    transformMetrics.codeNotRun.inc(notRun);
    for (const v of violations) {
      transformMetrics.violations.labels(v.sourceId, v.event, v.rule).inc();
      this.samples?.add(v);
    }
    const rejections = new Map<number, string[]>();
    for (const [[destination, status], n] of tally(results, (r, j) => [jobs[j].destinationId, r.status])) {
      transformMetrics.jobs.labels(destination, status).inc(n);
    }
    results.forEach((result, j) => {
      if (result.status !== 'rejected') return;
      const list = rejections.get(owner[j]) ?? [];
      list.push(`${jobs[j].destinationId}/${jobs[j].subscriptionId}: ${result.error}`);
      rejections.set(owner[j], list);
    });
    const routed = new Set(owner);
    transformMetrics.events.labels('routed').inc(routed.size);
    transformMetrics.events.labels('no_route').inc(items.length - routed.size);
    for (const [i, errors] of rejections) {
      const { message } = items[i];
      this.logger.warn(
        { partition: message.partition, offset: message.offset, rejected: errors },
        'director rejected jobs; event to the DLQ',
      );
      ctx.deadLetter(message, new Error(`director rejected ${errors.length} job(s): ${errors.join('; ')}`));
    }
  }
}
