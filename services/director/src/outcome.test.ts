import { backoffDelayMs, decide, parseRetryAfterMs, type AttemptResult } from './outcome';

const backoff = { baseMs: 1_000, capMs: 60_000 };
const now = Date.parse('2026-01-01T00:00:00Z');
const far = now + 4 * 3_600_000;
const res = (status: number, retryAfter?: string): AttemptResult => ({ kind: 'response', status, retryAfter, excerpt: '', durationMs: 1 });

describe('outcome table', () => {
  it.each([200, 201, 204, 299])('%i → succeeded', (status) => {
    expect(decide(res(status), { attempt: 1, now, expiresAt: far, backoff }).state).toBe('succeeded');
  });
  it.each([408, 429, 500, 502, 503, 504, 599])('%i → awaiting_retry', (status) => {
    expect(decide(res(status), { attempt: 1, now, expiresAt: far, backoff }).state).toBe('awaiting_retry');
  });
  it.each([400, 401, 403, 404, 409, 413, 422, 451])('%i → discarded', (status) => {
    expect(decide(res(status), { attempt: 1, now, expiresAt: far, backoff }).state).toBe('discarded');
  });
  it.each(['timeout', 'connection_refused', 'connection_reset', 'dns', 'network'] as const)('%s → awaiting_retry', (code) => {
    const d = decide({ kind: 'error', code, message: code, durationMs: 1 }, { attempt: 3, now, expiresAt: far, backoff });
    expect(d.state).toBe('awaiting_retry');
  });
  it('a retry beyond expires_at → archiving', () => {
    const d = decide(res(503, '120'), { attempt: 1, now, expiresAt: now + 60_000, backoff });
    expect(d.state).toBe('archiving');
  });
});

describe('backoff with full jitter', () => {
  it('stays within [0, min(cap, base·2^(n-1))]', () => {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** (attempt - 1));
      expect(backoffDelayMs(attempt, backoff, () => 0)).toBe(0);
      expect(backoffDelayMs(attempt, backoff, () => 0.999999)).toBeLessThanOrEqual(ceiling);
      expect(backoffDelayMs(attempt, backoff, () => 0.999999)).toBeGreaterThanOrEqual(ceiling - 1);
      for (let i = 0; i < 50; i++) {
        const d = backoffDelayMs(attempt, backoff);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });
});

describe('Retry-After', () => {
  it('parses delta seconds and HTTP dates', () => {
    expect(parseRetryAfterMs('120', now)).toBe(120_000);
    expect(parseRetryAfterMs(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfterMs(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfterMs('soon', now)).toBeNull();
    expect(parseRetryAfterMs(undefined, now)).toBeNull();
  });
  it('wins only when longer than the backoff', () => {
    const longer = decide(res(429, '30'), { attempt: 1, now, expiresAt: far, backoff, random: () => 0.5 });
    expect(longer).toMatchObject({ state: 'awaiting_retry', delayMs: 30_000 });
    const dated = decide(res(503, new Date(now + 45_000).toUTCString()), { attempt: 1, now, expiresAt: far, backoff, random: () => 0.5 });
    expect(dated).toMatchObject({ state: 'awaiting_retry', delayMs: 45_000 });
    const shorter = decide(res(503, '0'), { attempt: 5, now, expiresAt: far, backoff, random: () => 0.5 });
    expect(shorter).toMatchObject({ state: 'awaiting_retry', delayMs: 8_000 });
  });
});
