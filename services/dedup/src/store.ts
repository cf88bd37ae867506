import fs from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { BloomFilter } from './bloom';

// Layout of one partition's level store:
//   k<sourceId:messageId>     → receivedAt (ms, decimal) of the first accepted copy
//   t<bucket>:<key>           → ''  (expiry index: bucket = floor(receivedAt / bucketMs))
//   m:outputOffset            → last cdp.deduped offset whose key is applied here
//   m:streamTime              → highest receivedAt seen (drives expiry, so it is replayable)
//   m:keyCount                → live keys (sizes the filter at open)
const KEY = 'k';
const TIME = 't';
const META_OUTPUT_OFFSET = 'm:outputOffset';
const META_STREAM_TIME = 'm:streamTime';
const META_KEY_COUNT = 'm:keyCount';
const BUCKET_DIGITS = 14;

export interface PartitionStoreOptions {
  windowMs: number;
  /** False-positive rate of the in-memory filter. */
  bloomFpr?: number;
  /** Smallest filter, in keys; it is rebuilt larger when it fills. */
  minBloomCapacity?: number;
  /** LevelDB block cache per partition. */
  cacheBytes?: number;
}

export interface RecordEntry {
  key: string;
  receivedAtMs: number;
  /** The key is already stored (re-accepted after its window): an overwrite, not a new key. */
  replaces?: boolean;
}

/**
 * The "seen" cache of one input partition: every key published to cdp.deduped inside the
 * window. It is a cache of the output topic (the truth), so it may lag it; `outputOffset`
 * says up to where it is known to be complete, and the partition worker repairs the rest.
 */
export class PartitionStore {
  private bloom!: BloomFilter;
  private liveKeys = 0;
  private purgedSinceRebuild = 0;
  outputOffset = -1;
  streamTimeMs = 0;
  readonly bucketMs: number;

  private constructor(
    private readonly db: ClassicLevel<string, string>,
    readonly dir: string,
    private readonly options: Required<PartitionStoreOptions>,
  ) {
    // Expiry works per bucket; 28 buckets per window (a day each for the default window).
    this.bucketMs = Math.max(1, Math.floor(options.windowMs / 28));
  }

  static async open(dir: string, options: PartitionStoreOptions): Promise<PartitionStore> {
    fs.mkdirSync(dir, { recursive: true });
    const db = new ClassicLevel<string, string>(dir, {
      keyEncoding: 'utf8',
      valueEncoding: 'utf8',
      cacheSize: options.cacheBytes ?? 8 * 1024 * 1024,
    });
    await db.open();
    const store = new PartitionStore(db, dir, {
      bloomFpr: 0.01,
      minBloomCapacity: 1_000_000,
      cacheBytes: 8 * 1024 * 1024,
      ...options,
    });
    const [offset, time] = await db.getMany([META_OUTPUT_OFFSET, META_STREAM_TIME]);
    store.outputOffset = offset === undefined ? -1 : Number(offset);
    store.streamTimeMs = time === undefined ? 0 : Number(time);
    await store.rebuildBloom();
    return store;
  }

  get size(): number {
    return this.liveKeys;
  }

  get bloomBytes(): number {
    return this.bloom.memoryBytes;
  }

  /**
   * Rebuilds the filter from disk in one pass, sized for twice the recorded key count (kept in
   * the store's meta, so no counting pass is needed), reading keys in batches.
   */
  async rebuildBloom(): Promise<void> {
    const recorded = Number((await this.db.get(META_KEY_COUNT)) ?? 0);
    const bloom = new BloomFilter(Math.max(this.options.minBloomCapacity, recorded * 2, 1), this.options.bloomFpr);
    const it = this.db.iterator({ gt: KEY, lt: `${KEY}\uffff`, values: false });
    let count = 0;
    try {
      for (;;) {
        const entries = await it.nextv(10_000);
        if (entries.length === 0) break;
        for (const [k] of entries) bloom.add(k.slice(1));
        count += entries.length;
      }
    } finally {
      await it.close();
    }
    this.bloom = bloom.isOverfull ? await this.rebuildLarger(count) : bloom;
    this.liveKeys = count;
    this.purgedSinceRebuild = 0;
  }

  /** Only when the recorded count was stale (e.g. an older store): a second, larger pass. */
  private async rebuildLarger(count: number): Promise<BloomFilter> {
    const bloom = new BloomFilter(count * 2, this.options.bloomFpr);
    for await (const k of this.db.keys({ gt: KEY, lt: `${KEY}\uffff` })) bloom.add(k.slice(1));
    return bloom;
  }

  /** receivedAt (ms) of the first accepted copy of each key that was seen, from disk. */
  async lookup(keys: string[]): Promise<Map<string, number>> {
    const candidates = keys.filter((k) => this.bloom.mightContain(k));
    const found = new Map<string, number>();
    if (candidates.length === 0) return found;
    const values = await this.db.getMany(candidates.map((k) => KEY + k));
    candidates.forEach((k, i) => {
      const v = values[i];
      if (v !== undefined) found.set(k, Number(v));
    });
    return found;
  }

  private bucketOf(ms: number): string {
    return String(Math.floor(ms / this.bucketMs)).padStart(BUCKET_DIGITS, '0');
  }

  /**
   * Records accepted keys and the output offset they were published up to, in one atomic
   * batch: after a crash, either both are there or the repair from the output replays both.
   */
  async record(entries: RecordEntry[], outputOffset: number): Promise<void> {
    const ops: Array<{ type: 'put'; key: string; value: string }> = [];
    let maxTime = this.streamTimeMs;
    for (const e of entries) {
      ops.push({ type: 'put', key: KEY + e.key, value: String(e.receivedAtMs) });
      ops.push({ type: 'put', key: `${TIME}${this.bucketOf(e.receivedAtMs)}:${e.key}`, value: '' });
      if (e.receivedAtMs > maxTime) maxTime = e.receivedAtMs;
    }
    const added = new Set(entries.filter((e) => !e.replaces).map((e) => e.key)).size;
    const nextOffset = Math.max(this.outputOffset, outputOffset);
    ops.push({ type: 'put', key: META_OUTPUT_OFFSET, value: String(nextOffset) });
    ops.push({ type: 'put', key: META_STREAM_TIME, value: String(maxTime) });
    ops.push({ type: 'put', key: META_KEY_COUNT, value: String(this.liveKeys + added) });
    await this.db.batch(ops);
    for (const e of entries) if (!e.replaces) this.bloom.add(e.key);
    this.liveKeys += added;
    this.outputOffset = nextOffset;
    this.streamTimeMs = maxTime;
    if (this.bloom.isOverfull) await this.rebuildBloom();
  }

  /**
   * Deletes keys first seen more than a window before the stream time, a whole bucket at a
   * time. A key re-accepted later (after its window) keeps its newer entry.
   */
  async purgeExpired(): Promise<number> {
    const cutoff = this.streamTimeMs - this.options.windowMs;
    if (cutoff <= 0) return 0;
    // Buckets that end at or before the cutoff are entirely expired.
    const lastExpiredBucket = this.bucketOf(cutoff - this.bucketMs + 1);
    let purged = 0;
    let ops: Array<{ type: 'del'; key: string }> = [];
    const candidates: string[] = [];
    const flush = async () => {
      if (candidates.length > 0) {
        const times = await this.db.getMany(candidates.map((k) => KEY + k));
        candidates.forEach((k, i) => {
          if (times[i] !== undefined && Number(times[i]) < cutoff) {
            ops.push({ type: 'del', key: KEY + k });
            purged++;
          }
        });
        candidates.length = 0;
      }
      if (ops.length > 0) await this.db.batch(ops);
      ops = [];
    };
    for await (const tk of this.db.keys({ gt: TIME, lte: `${TIME}${lastExpiredBucket}:\uffff` })) {
      ops.push({ type: 'del', key: tk });
      candidates.push(tk.slice(tk.indexOf(':') + 1));
      if (candidates.length >= 1000) await flush();
    }
    await flush();
    this.liveKeys -= purged;
    await this.db.put(META_KEY_COUNT, String(this.liveKeys));
    this.purgedSinceRebuild += purged;
    // Purged keys still answer "maybe" in the filter; rebuild once they are a large share.
    if (this.purgedSinceRebuild > Math.max(10_000, this.liveKeys / 4)) await this.rebuildBloom();
    return purged;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
