/**
 * Per-source token buckets (events per second with a burst), refilled lazily on use. The set of
 * buckets is bounded by the sources of the workspace; a source whose limit changes gets a new
 * bucket on the next reload.
 */
export interface RateLimit {
  eventsPerSecond: number;
  burst?: number;
}

interface Bucket {
  limit: RateLimit;
  tokens: number;
  updatedMs: number;
}

export type RateDecision = { ok: true } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes `count` tokens, or none and says when enough will be there. */
  take(sourceId: string, limit: RateLimit | undefined, count: number): RateDecision {
    if (!limit || count <= 0) return { ok: true };
    const capacity = Math.max(limit.burst ?? limit.eventsPerSecond, 1);
    const now = this.now();
    let bucket = this.buckets.get(sourceId);
    if (!bucket || bucket.limit.eventsPerSecond !== limit.eventsPerSecond || bucket.limit.burst !== limit.burst) {
      bucket = { limit, tokens: capacity, updatedMs: now };
      this.buckets.set(sourceId, bucket);
    }
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.updatedMs) / 1000) * limit.eventsPerSecond);
    bucket.updatedMs = now;
    // A request larger than the whole burst is let through when the bucket is full, or it
    // could never pass; it then leaves the bucket in debt.
    if (bucket.tokens >= count || bucket.tokens >= capacity) {
      bucket.tokens -= count;
      return { ok: true };
    }
    const missing = Math.min(count, capacity) - bucket.tokens;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(missing / limit.eventsPerSecond)) };
  }

  /** Forgets buckets of sources no longer configured. */
  retain(sourceIds: Set<string>): void {
    for (const id of this.buckets.keys()) if (!sourceIds.has(id)) this.buckets.delete(id);
  }
}
