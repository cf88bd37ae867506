// The delivery outcome table (DESIGN.md "Delivery outcome rules"), as pure functions.

/** What one delivery attempt produced. */
export type AttemptResult =
  | { kind: 'response'; status: number; retryAfter?: string | null; excerpt: string; durationMs: number }
  | { kind: 'error'; code: AttemptErrorCode; message: string; durationMs: number };

/** Network-level failures; every one is retried. */
export type AttemptErrorCode = 'timeout' | 'connection_refused' | 'connection_reset' | 'dns' | 'network' | 'config';

export interface BackoffSettings {
  baseMs: number;
  capMs: number;
}

export type Decision =
  | { state: 'succeeded' }
  | { state: 'discarded' }
  | { state: 'awaiting_retry'; nextRetryAt: number; delayMs: number }
  | { state: 'archiving' };

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** "Full jitter": uniform in [0, min(cap, base * 2^(attempt-1))]. */
export function backoffDelayMs(attempt: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const exp = settings.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 40));
  const ceiling = Math.min(settings.capMs, exp);
  return Math.floor(random() * ceiling);
}

/** `Retry-After` as delta-seconds or an HTTP date; null when absent or unparseable. */
export function parseRetryAfterMs(value: string | null | undefined, now: number): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === '') return null;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - now);
}

/**
 * Next state after attempt number `attempt` (1-based). A retry whose time would fall beyond
 * `expiresAt` is not scheduled: the job goes to archiving right away.
 */
export function decide(
  result: AttemptResult,
  ctx: { attempt: number; now: number; expiresAt: number; backoff: BackoffSettings; random?: () => number },
): Decision {
  if (result.kind === 'response') {
    if (result.status >= 200 && result.status < 300) return { state: 'succeeded' };
    if (!isRetryableStatus(result.status)) return { state: 'discarded' };
  }
  let delay = backoffDelayMs(ctx.attempt, ctx.backoff, ctx.random);
  if (result.kind === 'response') {
    const retryAfter = parseRetryAfterMs(result.retryAfter, ctx.now);
    // The server's wish wins only when it asks for longer than our own backoff.
    if (retryAfter !== null && retryAfter > delay) delay = retryAfter;
  }
  const nextRetryAt = ctx.now + delay;
  if (nextRetryAt > ctx.expiresAt) return { state: 'archiving' };
  return { state: 'awaiting_retry', nextRetryAt, delayMs: delay };
}

/** Short error text stored with a transition. */
export function describeResult(result: AttemptResult): { httpStatus: number | null; error: string | null; excerpt: string | null } {
  if (result.kind === 'response') {
    const ok = result.status >= 200 && result.status < 300;
    return { httpStatus: result.status, error: ok ? null : `HTTP ${result.status}`, excerpt: result.excerpt || null };
  }
  return { httpStatus: null, error: `${result.code}: ${result.message}`, excerpt: null };
}
