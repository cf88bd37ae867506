import { CompactedTopicFollower, type Kafka, type RegulationReporter } from '@cdp/kafka';
import { parseRegulationKey, regulationSchema, suppresses } from '@cdp/events';
import type { Logger } from '@cdp/log';
import { suppressedUsers, suppressionBytes } from './metrics';

/**
 * A set of 64-bit hashes in an open-addressing table of two Uint32Arrays: 8 bytes per slot, at
 * most 70 % full, so about 12–23 bytes per member instead of hundreds for a Set of strings.
 * A false positive (two users sharing 64 bits of hash) is ~n²/2⁶⁵: 3·10⁻⁶ for 10 M members.
 */
export class HashSet64 {
  private hi: Uint32Array;
  private lo: Uint32Array;
  private members = 0;
  private used = 0; // members + tombstones

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity) cap *= 2;
    this.hi = new Uint32Array(cap);
    this.lo = new Uint32Array(cap);
  }

  get size(): number {
    return this.members;
  }

  get bytes(): number {
    return this.hi.byteLength + this.lo.byteLength;
  }

  // Slot states: (0,0) empty, (0,1) deleted; real hashes with hi 0 and lo < 2 get lo + 2.
  // No tuples or objects on these paths: they run once per event.

  /** The slot holding (hi, lo) as a non-negative index, or -(free slot + 1) when absent. */
  private find(hi: number, lo: number): number {
    const hiA = this.hi;
    const loA = this.lo;
    const mask = hiA.length - 1;
    let i = (lo ^ Math.imul(hi, 0x9e3779b1)) & mask;
    let firstFree = -1;
    for (;;) {
      const h = hiA[i];
      const l = loA[i];
      if (h === 0 && l === 0) return -((firstFree >= 0 ? firstFree : i) + 1);
      if (h === 0 && l === 1) {
        if (firstFree < 0) firstFree = i;
      } else if (h === hi && l === lo) return i;
      i = (i + 1) & mask;
    }
  }

  has(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo < 2) lo += 2;
    return this.find(hi, lo) >= 0;
  }

  add(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo < 2) lo += 2;
    const at = this.find(hi, lo);
    if (at >= 0) return false;
    const index = -at - 1;
    const wasEmpty = this.hi[index] === 0 && this.lo[index] === 0;
    this.hi[index] = hi;
    this.lo[index] = lo;
    this.members++;
    if (wasEmpty) this.used++;
    if (this.used > this.hi.length * 0.7) this.rehash(this.members * 2 > this.hi.length * 0.7 ? this.hi.length * 2 : this.hi.length);
    return true;
  }

  delete(hi: number, lo: number): boolean {
    hi >>>= 0;
    lo >>>= 0;
    if (hi === 0 && lo < 2) lo += 2;
    const index = this.find(hi, lo);
    if (index < 0) return false;
    this.hi[index] = 0;
    this.lo[index] = 1;
    this.members--;
    return true;
  }

  private rehash(capacity: number): void {
    const oldHi = this.hi;
    const oldLo = this.lo;
    this.hi = new Uint32Array(capacity);
    this.lo = new Uint32Array(capacity);
    this.members = 0;
    this.used = 0;
    for (let i = 0; i < oldHi.length; i++) {
      const h = oldHi[i];
      const l = oldLo[i];
      if (h === 0 && l < 2) continue;
      const index = -this.find(h, l) - 1;
      this.hi[index] = h;
      this.lo[index] = l;
      this.members++;
      this.used++;
    }
  }
}

/** Two independent 32-bit halves of a string hash (cyrb53's mixing, kept at 64 bits). */
export function hash64(text: string): [number, number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** Suppressed (spaceId, userId) pairs, stored as hashes only. */
export class SuppressionSet {
  private readonly set = new HashSet64();

  private static key(spaceId: string, userId: string): [number, number] {
    return hash64(`${spaceId}\u0000${userId}`);
  }

  has(spaceId: string, userId: string): boolean {
    if (this.set.size === 0) return false;
    const [hi, lo] = SuppressionSet.key(spaceId, userId);
    return this.set.has(hi, lo);
  }

  suppress(spaceId: string, userId: string): void {
    const [hi, lo] = SuppressionSet.key(spaceId, userId);
    this.set.add(hi, lo);
  }

  release(spaceId: string, userId: string): void {
    const [hi, lo] = SuppressionSet.key(spaceId, userId);
    this.set.delete(hi, lo);
  }

  get size(): number {
    return this.set.size;
  }

  get bytes(): number {
    return this.set.bytes;
  }

  /**
   * Applies one record of the compacted topic: the latest state per key wins; a tombstone or
   * an UNSUPPRESS / DELETE_ONLY state removes the user.
   */
  applyRecord(key: string | null, value: Buffer | null): 'applied' | 'invalid' {
    if (key === null) return 'invalid';
    let parsedKey: { spaceId: string; userId: string };
    try {
      parsedKey = parseRegulationKey(key);
    } catch {
      return 'invalid';
    }
    if (value === null || value.length === 0) {
      this.release(parsedKey.spaceId, parsedKey.userId);
      return 'applied';
    }
    let json: unknown;
    try {
      json = JSON.parse(value.toString('utf8'));
    } catch {
      return 'invalid';
    }
    const r = regulationSchema.safeParse(json);
    if (!r.success) return 'invalid';
    if (suppresses(r.data.type)) this.suppress(r.data.spaceId, r.data.userId);
    else this.release(r.data.spaceId, r.data.userId);
    return 'applied';
  }
}

/**
 * The suppression set rebuilt from the start of cdp.regulations, then kept up to date by the
 * shared compacted-topic follower; `ready` once the topic was read up to its end at start.
 */
export class SuppressionFollower {
  readonly set = new SuppressionSet();
  private readonly follower: CompactedTopicFollower;

  /** `reporter`: tapi's part of each regulation (cdp.regulation-status) is done once its record is applied. */
  constructor(
    kafka: Kafka,
    topic: string,
    logger: Logger,
    private readonly reporter?: RegulationReporter,
  ) {
    this.follower = new CompactedTopicFollower({
      kafka,
      topic,
      logger,
      groupPrefix: 'cdp-tapi-regulations',
      apply: (record) => {
        if (this.set.applyRecord(record.key, record.value) === 'invalid') return 'invalid';
        if (reporter && record.value) reporter.handled(regulationSchema.parse(JSON.parse(record.value.toString('utf8'))));
      },
      afterBatch: () => {
        suppressedUsers.set(this.set.size);
        suppressionBytes.set(this.set.bytes);
        void reporter?.flush();
      },
      onCaughtUp: () => logger.info({ suppressedUsers: this.set.size, bytes: this.set.bytes }, 'suppression set rebuilt'),
    });
  }

  get ready(): boolean {
    return this.follower.caughtUp;
  }

  start(): void {
    this.follower.start();
  }

  async stop(): Promise<void> {
    await this.follower.stop();
    await this.reporter?.close();
  }
}
