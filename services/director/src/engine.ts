import { DELETE_SUBSCRIPTION_ID } from '@cdp/director-rpc';
import { FencedError, type StoredJob, type Transition } from '@cdp/jobdb';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import type { Destination, Workspace } from '@cdp/workspace';
import type { DestinationDriver } from './destinations';
import { MemoryBudget } from './budget';
import { storedJob, type Job, type JobContent } from './job';
import {
  abortedCalls,
  attemptDuration,
  circuitOpen,
  countSchedulerQueuesWith,
  deliveries,
  inFlight,
  queueDepth,
  startedWithInsert,
  undeliveredPublished,
} from './metrics';
import { decide, describeResult, type AttemptResult, type BackoffSettings } from './outcome';
import { Scheduler, type DestinationPolicy } from './scheduler';
import type { BreakerSettings } from './limits';
import type { StatsCollector } from './stats';
import { undeliveredRecord, type UndeliveredPublisher } from './undelivered';

/** Where the transitions of one JobDB's jobs are written. */
export interface JobSink {
  readonly jobDbId: string;
  /** False once the JobDB's lock is lost or released: nothing more may be written. */
  readonly writable: boolean;
  /** Aborted when the JobDB's lock is lost or released: its calls in flight stop at once. */
  readonly signal: AbortSignal;
  write(rows: Transition[]): Promise<void>;
  /** A job's content read back from the JobDB (batched, see ContentReader); undefined when it has no such job. */
  readContent(jobId: string): Promise<JobContent | undefined>;
}

/** See DeliveryEngine.admission. */
export interface Admission {
  /** Asked once per job about to be stored: true when its `executing` row goes in with the insert. */
  claim(job: StoredJob): boolean;
  /** The insert committed: `startedIds` got their `executing` row (at `startedAt`). */
  admit(inserted: readonly StoredJob[], startedIds: ReadonlySet<string>, startedAt: number): void;
  /** The insert failed. */
  cancel(): void;
}

export interface OperatorControl {
  paused?: boolean;
  priority?: number;
  rateLimitPerSecond?: number;
}

export interface EngineOptions {
  logger: Logger;
  workspace: () => Workspace;
  /** Driver per destination type; `webhook` at least. */
  drivers: Record<string, DestinationDriver>;
  publisher: UndeliveredPublisher;
  stats?: StatsCollector;
  control: (destinationId: string) => OperatorControl | undefined;
  backoff: BackoffSettings;
  breaker: BreakerSettings;
  maxInFlight: number;
  /** DIRECTOR_MAX_QUEUED_BYTES (MemoryBudget). */
  maxQueuedBytes: number;
  now?: () => number;
  random?: () => number;
  /** A job reached a final state (succeeded, discarded, archived) and it is written; its content is in memory. */
  onFinal?: (job: Job) => void;
}

/** Archivings running at once (each holds its job's content until `archived` is written). */
const ARCHIVING_AT_ONCE = 500;
/** Pause before a job whose content could not be read is scheduled again. */
const CONTENT_RETRY_MS = 1_000;

type BreakerOutcome = 'success' | 'failure' | 'throttled' | 'rejected';

function breakerOutcome(result: AttemptResult): BreakerOutcome {
  if (result.kind === 'error') return 'failure';
  if (result.status >= 200 && result.status < 300) return 'success';
  if (result.status === 429) return 'throttled';
  if (result.status === 408 || result.status >= 500) return 'failure';
  return 'rejected';
}

/**
 * Runs deliveries for every JobDB this director holds: takes the next job from the fair
 * scheduler, persists `executing`, calls the destination, persists the outcome, and
 * schedules retries or archives expired jobs.
 */
export class DeliveryEngine {
  readonly scheduler: Scheduler;
  private readonly sinks = new Map<string, JobSink>();
  /** Non-final jobs per JobDB (waiting + in flight), to know when a draining JobDB is done. */
  private readonly open = new Map<string, number>();
  /** The sum of `open`: jobs held in memory. */
  private held = 0;
  readonly budget: MemoryBudget;
  /** Jobs to archive, started at most ARCHIVING_AT_ONCE at a time (each holds its content while archiving). */
  private readonly toArchive: Array<{ job: Job; sink: JobSink }> = [];
  private archiving = 0;
  private readonly running = new Set<Promise<void>>();
  private pumpScheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private sweeps = 0;
  private readonly now: () => number;
  private readonly knownDestinations = new Set<string>();

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? Date.now;
    this.budget = new MemoryBudget(options.maxQueuedBytes, () => this.held);
    this.scheduler = new Scheduler({
      breaker: options.breaker,
      maxInFlight: options.maxInFlight,
      policyOf: (id) => this.policyOf(id),
    });
  }

  start(): void {
    countSchedulerQueuesWith(() => this.scheduler.destinations.size);
    this.sweepTimer = setInterval(() => this.sweepExpired(), 1_000);
    this.sweepTimer.unref();
  }

  policyOf(destinationId: string): DestinationPolicy {
    const dest = this.options.workspace().destination(destinationId);
    const control = this.options.control(destinationId) ?? {};
    return {
      maxConcurrency: dest?.limits.maxConcurrency ?? 10,
      maxRatePerSecond: dest?.limits.maxRatePerSecond,
      paused: control.paused === true,
      priority: control.priority ?? 0,
      rateOverride: control.rateLimitPerSecond,
    };
  }

  /** Workspace reload or operator control change. */
  refreshPolicies(): void {
    this.scheduler.refreshPolicies(this.now());
    this.schedulePump();
  }

  /** A JobDB was taken (or adopted): its rebuilt jobs join the queues. */
  attach(sink: JobSink, jobs: Job[]): void {
    this.sinks.set(sink.jobDbId, sink);
    this.open.set(sink.jobDbId, this.open.get(sink.jobDbId) ?? 0);
    const archiving = jobs.filter((j) => j.state === 'archiving');
    this.add(jobs.filter((j) => j.state !== 'archiving'));
    for (const job of archiving) {
      this.bumpOpen(job.jobDbId, 1);
      this.budget.keepContentIfRoom(job);
      this.queueArchive(job, sink);
    }
  }

  /** The JobDB's lock is gone: forget its waiting jobs (in-flight ones finish without writing). */
  detach(jobDbId: string): void {
    this.sinks.delete(jobDbId);
    for (const job of this.scheduler.removeJobDb(jobDbId)) this.budget.release(job);
    this.held -= this.open.get(jobDbId) ?? 0;
    this.open.delete(jobDbId);
  }

  openJobs(jobDbId: string): number {
    return this.open.get(jobDbId) ?? 0;
  }

  /**
   * Admission of one RPC batch into `sink`'s JobDB. While the insert is prepared, `claim`
   * takes a start slot for a job that would be picked at once (at most one per source and
   * destination, as a sparse source's first job), so its `executing` row is committed with
   * the insert and its call starts without another commit. After the commit, `admit` starts
   * the claimed jobs that were stored and queues the rest; `cancel` gives the slots back when
   * the insert failed.
   */
  admission(sink: JobSink): Admission {
    const claimed = new Map<string, Job>();
    const pairs = new Set<string>();
    const releaseAll = (keep: ReadonlySet<string>) => {
      const now = this.now();
      for (const [id, job] of claimed) if (!keep.has(id)) this.scheduler.release(job, false, now);
      if (claimed.size > 0) this.schedulePump();
    };
    return {
      claim: (stored) => {
        const now = this.now();
        const pair = `${stored.sourceId}\u0000${stored.destinationId}`;
        if (this.stopped || !sink.writable || pairs.has(pair) || stored.expiresAt.getTime() <= now) return false;
        const job = storedJob(stored, sink.jobDbId);
        if (!this.scheduler.claim(job, now)) return false;
        pairs.add(pair);
        claimed.set(job.id, job);
        return true;
      },
      admit: (inserted, startedIds, startedAt) => {
        const writable = sink.writable && this.sinks.get(sink.jobDbId) === sink;
        // Not started (duplicates, or the lock went while inserting: the next holder retries them).
        releaseAll(writable ? startedIds : new Set());
        if (!writable) return;
        const queued: Job[] = [];
        for (const stored of inserted) {
          const job = startedIds.has(stored.id) ? claimed.get(stored.id) : undefined;
          if (!job) {
            queued.push(storedJob(stored, sink.jobDbId));
            continue;
          }
          job.attempt = 1;
          job.state = 'executing';
          job.content!.firstAttemptAt = startedAt;
          this.budget.hold(job, job.content!);
          this.bumpOpen(job.jobDbId, 1);
          this.knownDestinations.add(job.destinationId);
          startedWithInsert.inc();
          this.track(this.attempt(job, false, sink));
        }
        this.add(queued);
      },
      cancel: () => releaseAll(new Set()),
    };
  }

  /** New or rebuilt jobs (already committed in their JobDB); `newlyHeld` false for a job held already, put back in line. */
  add(jobs: Job[], newlyHeld = true): void {
    const now = this.now();
    for (const job of jobs) {
      this.scheduler.enqueue(job, now);
      if (newlyHeld) this.bumpOpen(job.jobDbId, 1);
      this.budget.keepContentIfRoom(job);
      this.knownDestinations.add(job.destinationId);
    }
    this.schedulePump();
  }

  private bumpOpen(jobDbId: string, delta: number): void {
    if (!this.sinks.has(jobDbId)) return;
    this.open.set(jobDbId, (this.open.get(jobDbId) ?? 0) + delta);
    this.held += delta;
  }

  /** The job is final: it leaves memory. */
  private finished(job: Job): void {
    this.budget.release(job);
    this.bumpOpen(job.jobDbId, -1);
  }

  /**
   * Gives `job` its content, read back from the JobDB when the budget had not kept it. False
   * when it could not be read: then the job is back in line after a pause (MySQL may be down),
   * or forgotten when its JobDB has no such job.
   */
  private async withContent(job: Job, sink: JobSink): Promise<boolean> {
    if (job.content !== null) return true;
    let content: JobContent | undefined;
    try {
      content = await sink.readContent(job.id);
    } catch (error) {
      if (sink.writable)
        this.options.logger.warn(
          { ...errorFields(error), jobId: job.id },
          'could not read a job content back from its JobDB; trying again',
        );
      this.putBack(job, sink);
      return false;
    }
    if (!content) {
      this.options.logger.error({ jobId: job.id, jobDb: job.jobDbId }, 'job missing from its JobDB; dropped from memory');
      this.finished(job);
      return false;
    }
    this.budget.hold(job, content);
    return true;
  }

  get inFlight(): number {
    return this.scheduler.inFlight;
  }

  /** Stops starting attempts and waits (up to `timeoutMs`) for those in flight to be persisted. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    clearTimeout(this.wakeTimer);
    clearInterval(this.sweepTimer);
    const all = Promise.all([...this.running]).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
    });
    const done = await Promise.race([all, timeout]);
    clearTimeout(timer);
    return done;
  }

  updateGauges(): void {
    const depth = this.scheduler.depth();
    const ws = this.options.workspace();
    queueDepth.reset();
    let other = 0;
    for (const [id, n] of depth) {
      if (ws.destination(id)) queueDepth.set({ destination_id: id }, n);
      else other += n;
    }
    if (other > 0) queueDepth.set({ destination_id: '_unknown' }, other);
    inFlight.set(this.scheduler.inFlight);
    const now = this.now();
    let open = 0;
    for (const q of this.scheduler.destinations.values()) if (q.breaker.state(now) !== 'closed') open += 1;
    circuitOpen.set(open);
    this.budget.updateGauges();
  }

  schedulePump(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.stopped) return;
    const now = this.now();
    for (;;) {
      const picked = this.scheduler.next(now);
      if (!picked) break;
      this.track(this.run(picked.job, picked.retry));
    }
    const wake = this.scheduler.nextWake(now);
    if (wake !== undefined && wake < this.wakeAt) {
      clearTimeout(this.wakeTimer);
      this.wakeAt = wake;
      this.wakeTimer = setTimeout(
        () => {
          this.wakeAt = Infinity;
          this.pump();
        },
        Math.max(1, wake - now),
      );
    }
  }

  private track(p: Promise<void>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private destination(id: string): Destination | undefined {
    return this.options.workspace().destination(id);
  }

  private async run(job: Job, retry: boolean): Promise<void> {
    const sink = this.sinks.get(job.jobDbId);
    const now = this.now();
    if (!sink?.writable) {
      this.scheduler.release(job, retry, now);
      this.budget.release(job);
      return;
    }
    if (job.expiresAt <= now) {
      this.scheduler.release(job, retry, now);
      this.schedulePump();
      this.queueArchive(job, sink);
      return;
    }
    if (job.content === null && !(await this.withContent(job, sink))) {
      this.scheduler.release(job, retry, this.now());
      this.schedulePump();
      return;
    }
    const content = job.content!;
    const from = job.state;
    job.attempt += 1;
    job.state = 'executing';
    content.firstAttemptAt ??= now;
    try {
      // Persisted before the call: a director killed mid-call leaves `executing`, which the next holder retries.
      await sink.write([{ jobId: job.id, from, to: 'executing', attempt: job.attempt, at: new Date(now) }]);
    } catch (error) {
      job.attempt -= 1;
      job.state = from;
      this.scheduler.release(job, retry, this.now());
      this.budget.release(job);
      if (!(error instanceof FencedError) && sink.writable) this.options.logger.warn(errorFields(error), 'could not persist executing');
      return;
    }
    await this.attempt(job, retry, sink);
  }

  /** Calls the destination for a job whose `executing` row is committed, then persists the outcome. */
  private async attempt(job: Job, retry: boolean, sink: JobSink): Promise<void> {
    const dest = this.destination(job.destinationId);
    const type = dest?.type ?? 'unknown';
    const driver = dest
      ? (this.options.drivers[dest.kind === 'webhook' ? 'webhook' : dest.type] ?? this.options.drivers.action)
      : undefined;
    let result: AttemptResult;
    if (!dest || !dest.enabled) {
      // Config may lag the transform that sent the job: retry until the window closes.
      result = { kind: 'error', code: 'config', message: `destination ${job.destinationId} is not configured or disabled`, durationMs: 0 };
    } else if (!driver) {
      result = { kind: 'error', code: 'config', message: `no driver for destination type ${dest.type}`, durationMs: 0 };
    } else {
      result = await driver.deliver(job, dest, sink.signal);
    }
    const now = this.now();
    if (sink.signal.aborted) {
      // The lock is gone: the next holder retries this job. Nothing is written and the breaker
      // learns nothing from a call this director cut short.
      abortedCalls.inc();
      this.scheduler.release(job, retry, now);
      this.budget.release(job);
      this.schedulePump();
      return;
    }
    this.scheduler.finished(job, retry, breakerOutcome(result), now);
    this.schedulePump();
    attemptDuration.observe({ destination_type: type }, result.durationMs / 1000);

    const decision = decide(result, {
      attempt: job.attempt,
      now,
      expiresAt: job.expiresAt,
      backoff: this.options.backoff,
      random: this.options.random,
    });
    const detail = describeResult(result);
    const content = job.content!;
    content.lastStatus = detail.httpStatus;
    if (detail.error !== null) content.lastError = detail.error;
    content.lastResponseExcerpt = detail.excerpt;
    this.budget.resize(job);
    const failure =
      decision.state === 'succeeded' ? null : { status: detail.httpStatus, error: detail.error, responseExcerpt: detail.excerpt };
    const outcomeLabel = decision.state === 'awaiting_retry' ? 'retry' : decision.state === 'archiving' ? 'expired' : decision.state;
    deliveries.inc({ destination_type: type, outcome: outcomeLabel });

    if (decision.state === 'archiving') {
      this.options.stats?.record(job.sourceId, job.destinationId, 'retried', result.durationMs, failure, now);
      this.queueArchive(job, sink);
      return;
    }
    const transition: Transition = {
      jobId: job.id,
      from: 'executing',
      to: decision.state,
      attempt: job.attempt,
      at: new Date(now),
      httpStatus: detail.httpStatus,
      error: detail.error,
      responseExcerpt: detail.excerpt,
      nextRetryAt: decision.state === 'awaiting_retry' ? new Date(decision.nextRetryAt) : null,
    };
    try {
      await sink.write([transition]);
    } catch {
      // Lock lost: the next holder owns this job now (it rebuilds from the tables).
      this.budget.release(job);
      return;
    }
    job.state = decision.state;
    this.options.stats?.record(
      job.sourceId,
      job.destinationId,
      decision.state === 'awaiting_retry' ? 'retried' : decision.state,
      result.durationMs,
      failure,
      now,
    );
    if (decision.state === 'awaiting_retry') {
      job.nextRetryAt = decision.nextRetryAt;
      this.budget.keepContentIfRoom(job);
      this.scheduler.enqueue(job, now);
      this.schedulePump();
    } else {
      this.options.onFinal?.(job);
      this.finished(job);
    }
  }

  /** A job whose content could not be read: back in line after a pause, unless its JobDB was let go meanwhile. */
  private putBack(job: Job, sink: JobSink): void {
    const timer = setTimeout(() => {
      if (this.sinks.get(job.jobDbId) !== sink || !sink.writable) return;
      if (job.state === 'archiving' || job.expiresAt <= this.now()) this.queueArchive(job, sink);
      else this.add([job], false);
    }, CONTENT_RETRY_MS);
    timer.unref();
  }

  /** Archives `job` when fewer than ARCHIVING_AT_ONCE archivings run (a whole backlog may expire at once). */
  private queueArchive(job: Job, sink: JobSink): void {
    this.toArchive.push({ job, sink });
    this.nextArchives();
  }

  private nextArchives(): void {
    while (this.archiving < ARCHIVING_AT_ONCE && this.toArchive.length > 0) {
      const { job, sink } = this.toArchive.shift()!;
      this.archiving += 1;
      this.track(
        (job.state === 'archiving' ? this.finishArchive(job, sink) : this.archive(job, sink)).finally(() => {
          this.archiving -= 1;
          this.nextArchives();
        }),
      );
    }
  }

  /** executing|awaiting_* → archiving → (cdp.undelivered) → archived. */
  private async archive(job: Job, sink: JobSink): Promise<void> {
    if (!sink.writable || !(await this.withContent(job, sink))) return;
    const content = job.content!;
    const now = this.now();
    try {
      await sink.write([
        {
          jobId: job.id,
          from: job.state,
          to: 'archiving',
          attempt: job.attempt,
          at: new Date(now),
          error: content.lastError,
          httpStatus: content.lastStatus,
        },
      ]);
    } catch {
      this.budget.release(job);
      return;
    }
    job.state = 'archiving';
    await this.finishArchive(job, sink);
  }

  /** Publishes then records `archived`, through the sink the job came from (never a later re-attachment). */
  private async finishArchive(job: Job, sink: JobSink): Promise<void> {
    let delay = 500;
    if (!(await this.withContent(job, sink))) return;
    // A GDPR delete job is no event: its failure is reported on cdp.regulation-status, never replayed.
    const publish = job.content!.subscriptionId !== DELETE_SUBSCRIPTION_ID;
    for (; publish;) {
      if (!sink.writable || this.sinks.get(job.jobDbId) !== sink) {
        this.budget.release(job);
        return;
      }
      try {
        const { key, value } = undeliveredRecord(job, this.now());
        await this.options.publisher.publish([{ key, value }]);
        break;
      } catch (error) {
        if (this.stopped) {
          this.budget.release(job);
          return; // stays `archiving`; the next holder publishes it again
        }
        this.options.logger.warn({ ...errorFields(error), jobId: job.id }, 'publish to cdp.undelivered failed; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
    if (publish) undeliveredPublished.inc();
    try {
      if (!sink.writable) throw new Error('not writable');
      await sink.write([{ jobId: job.id, from: 'archiving', to: 'archived', attempt: job.attempt, at: new Date(this.now()) }]);
    } catch {
      this.budget.release(job);
      return;
    }
    job.state = 'archived';
    this.options.stats?.record(job.sourceId, job.destinationId, 'archived', null, null, this.now());
    this.options.onFinal?.(job);
    this.finished(job);
  }

  private sweepExpired(): void {
    if (this.stopped) return;
    const now = this.now();
    this.sweeps += 1;
    // Big queues are scanned fully every 10th pass (see DestinationQueue.takeExpired).
    for (const job of this.scheduler.takeExpired(now, this.sweeps % 10 === 0)) {
      const sink = this.sinks.get(job.jobDbId);
      if (sink?.writable) this.queueArchive(job, sink);
    }
    this.updateGauges();
  }
}
