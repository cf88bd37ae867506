import { FencedError, type JobDb, type Transition } from '@cdp/jobdb';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { fencedWrites, jobDbTransitionBatch, jobDbTransitionDuration } from './metrics';

interface Pending {
  rows: Transition[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit of transitions into one JobDB: callers arriving while transactions run ride
 * the next one. Up to `parallel` transactions run at once (each fenced on its own); a job's
 * next transition is only written after its previous one resolved, so per-job order holds.
 * Transient errors are retried (rows kept); a FencedError or a stop fails every waiting
 * caller and makes the writer unusable.
 */
export class TransitionWriter {
  private queue: Pending[] = [];
  private running = 0;
  private scheduled = false;
  private stoppedWith: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private retryDelayMs = 50;

  constructor(
    private readonly db: JobDb,
    readonly leaseId: number,
    private readonly logger: Logger,
    private readonly maxBatch: number,
    private readonly onFenced: (error: FencedError) => void,
    private readonly parallel = 3,
  ) {}

  get stopped(): boolean {
    return this.stoppedWith !== undefined;
  }

  write(rows: Transition[]): Promise<void> {
    if (this.stoppedWith) return Promise.reject(this.stoppedWith);
    if (rows.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ rows, resolve, reject });
      this.kick();
    });
  }

  /** Resolves once everything queued so far is committed (or failed). */
  flush(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Refuses further writes and fails queued ones (lock lost: we may no longer write). */
  stop(reason: Error): void {
    this.stoppedWith ??= reason;
    const queued = this.queue;
    this.queue = [];
    for (const p of queued) p.reject(reason);
    this.checkIdle();
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Let callers of the same tick join the first transaction.
    setImmediate(() => {
      this.scheduled = false;
      while (this.running < this.parallel && this.queue.length > 0 && !this.stoppedWith) {
        this.running += 1;
        void this.flushOne().finally(() => {
          this.running -= 1;
          if (this.queue.length > 0 && !this.stoppedWith) this.kick();
          this.checkIdle();
        });
      }
    });
  }

  private checkIdle(): void {
    if (this.running > 0 || (this.queue.length > 0 && !this.stoppedWith)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async flushOne(): Promise<void> {
    const batch: Pending[] = [];
    let count = 0;
    while (this.queue.length > 0 && (count === 0 || count + this.queue[0].rows.length <= this.maxBatch)) {
      const p = this.queue.shift()!;
      batch.push(p);
      count += p.rows.length;
    }
    const stop = jobDbTransitionDuration.startTimer();
    try {
      await this.db.appendTransitions(
        this.leaseId,
        batch.flatMap((p) => p.rows),
      );
      stop();
      jobDbTransitionBatch.observe(count);
      this.retryDelayMs = 50;
      for (const p of batch) p.resolve();
    } catch (error) {
      if (error instanceof FencedError) {
        fencedWrites.inc();
        for (const p of batch) p.reject(error);
        const first = !this.stoppedWith;
        this.stop(error);
        if (first) this.onFenced(error);
        return;
      }
      if (this.stoppedWith) {
        for (const p of batch) p.reject(this.stoppedWith);
        return;
      }
      const delay = this.retryDelayMs;
      this.retryDelayMs = Math.min(delay * 2, 2_000);
      this.logger.warn({ ...errorFields(error), rows: count, retryInMs: delay }, 'transition write failed; retrying');
      await sleep(delay);
      if (this.stoppedWith) {
        for (const p of batch) p.reject(this.stoppedWith);
        return;
      }
      this.queue.unshift(...batch);
    }
  }
}
