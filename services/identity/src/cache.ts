import { cacheLookups } from './metrics';

/**
 * A short-lived, size-bounded read cache: an entry is served for `ttlMs` after it was stored; past
 * `maxEntries` the oldest stored go first. Staleness is safe: every write it leads to is conditional.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly name: string,
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    const hit = e !== undefined && e.until > this.now();
    if (e && !hit) this.entries.delete(key);
    cacheLookups.labels(this.name, hit ? 'hit' : 'miss').inc();
    return hit ? e.value : undefined;
  }

  /** The live entry without counting a lookup (for a caller that counted it already). */
  peek(key: string): V | undefined {
    const e = this.entries.get(key);
    return e !== undefined && e.until > this.now() ? e.value : undefined;
  }

  /** Changes a live entry in place, keeping when it expires (a partial update is no fresh read). */
  update(key: string, change: (value: V) => V): void {
    const e = this.entries.get(key);
    if (e !== undefined && e.until > this.now()) e.value = change(e.value);
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, until: this.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
