import { EventEmitter } from 'node:events';
import type { BlockingQuery } from './client';

export interface WatchOptions {
  /** Longest wait of each blocking query (Go duration); default "30s". */
  wait?: string;
  /** After the n-th failure in a row the watch waits 2^n x this before retrying; default 100 ms. */
  backoffFactorMs?: number;
  /** Cap of that wait; default 30 s. */
  backoffMaxMs?: number;
}

export interface ConsulWatchEvents<T> {
  /** The first answer, then every answer whose index moved. */
  change: [value: T, index: number];
  /** A failed query (the watch retries after a backoff), or a `change` listener that threw. */
  error: [error: unknown];
}

/**
 * Follows a blocking query: each answer's `X-Consul-Index` is passed back as `index`, so Consul
 * answers again only once the data changed (or `wait` passed). Follows Consul's rules for
 * clients: an index that goes backwards (a snapshot restore, a new leader) starts over from 0,
 * and an index below 1 is an error, never a reason to query in a tight loop. Failures are
 * retried with exponential backoff until `end()`; a watch never ends by itself.
 */
export class ConsulWatch<T> extends EventEmitter<ConsulWatchEvents<T>> {
  private index = 0;
  private ended = false;
  private failures = 0;
  private readonly aborter = new AbortController();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly wait: string;
  private readonly backoffFactorMs: number;
  private readonly backoffMaxMs: number;

  constructor(
    private readonly query: BlockingQuery<T>,
    options: WatchOptions = {},
  ) {
    super();
    this.wait = options.wait ?? '30s';
    this.backoffFactorMs = options.backoffFactorMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    // Next tick: the caller attaches its listeners first.
    process.nextTick(() => void this.run());
  }

  get isRunning(): boolean {
    return !this.ended;
  }

  /** Stops the watch and aborts the query in flight; no event follows. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.retryTimer);
    this.aborter.abort();
  }

  private async run(): Promise<void> {
    while (!this.ended) {
      let answer;
      try {
        answer = await this.query({ index: this.index, wait: this.wait, signal: this.aborter.signal });
        if (answer.index < 1) throw new Error(`Consul answered index ${answer.index}; a blocking query needs an index of at least 1`);
      } catch (error) {
        if (this.ended) return;
        this.failures++;
        this.reportError(error);
        await new Promise<void>((resolve) => {
          this.retryTimer = setTimeout(resolve, Math.min(this.backoffMaxMs, 2 ** this.failures * this.backoffFactorMs));
        });
        continue;
      }
      if (this.ended) return;
      this.failures = 0;
      if (answer.index < this.index) {
        this.index = 0;
      } else if (answer.index !== this.index) {
        this.index = answer.index;
        try {
          this.emit('change', answer.value, answer.index);
        } catch (error) {
          // A throwing listener must not end the watch (nor surface as an unhandled rejection).
          this.reportError(error);
        }
      }
    }
  }

  private reportError(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
