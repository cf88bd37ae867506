import { randomBytes } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { parseRegulationKey, regulationSchema, suppresses } from '@cdp/events';
import { errorFields, type Logger } from '@cdp/log';
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

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Rebuilds the set from the start of cdp.regulations, then follows it. A fresh consumer group
 * per process with no commits: every start reads the compacted topic whole, which is the point.
 * `ready` turns true once every partition was read up to its end offset at start (as a
 * read_committed consumer reads: past aborted records and transaction markers).
 */
export class SuppressionFollower {
  readonly set = new SuppressionSet();
  private consumer: Consumer | undefined;
  private isReady = false;
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly logger: Logger,
  ) {}

  get ready(): boolean {
    return this.isReady;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (this.running && !this.consumer) {
      try {
        await this.startConsumer();
      } catch (error) {
        this.logger.warn({ ...errorFields(error), retryInMs: backoff }, 'cannot start the regulations consumer yet');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  }

  private async startConsumer(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    let targets: Map<number, bigint>;
    try {
      const offsets = await admin.fetchTopicOffsets(this.topic);
      // Partitions to read up to (exclusive end offset); an empty one is already complete.
      targets = new Map(offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)]));
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    const consumer = this.kafka.consumer({
      groupId: `cdp-tapi-regulations-${randomBytes(6).toString('hex')}`,
      sessionTimeout: 30_000,
      allowAutoTopicCreation: false,
    });
    // kafkajs restarts a consumer after retriable errors itself; after a non-retriable crash it
    // stays stopped, so start over from the beginning (re-applying records is idempotent).
    consumer.on(consumer.events.CRASH, (e) => {
      if (e.payload.restart || !this.running || this.consumer !== consumer) return;
      this.logger.warn(errorFields(e.payload.error), 'regulations consumer crashed; re-reading the topic');
      this.consumer = undefined;
      void consumer.disconnect().catch(() => undefined);
      this.loop = this.run();
    });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      const markReady = () => {
        if (!this.isReady && targets.size === 0) {
          this.isReady = true;
          this.logger.info({ suppressedUsers: this.set.size, bytes: this.set.bytes }, 'suppression set rebuilt');
        }
      };
      // Progress is the offset the consumer has read past, control records included: a
      // transaction's commit or abort marker can be the last offset of a partition, and kafkajs
      // hides it from eachBatch (a batch of markers only is never handed over at all) but
      // reports it here, after eachBatch, as the batch's lastOffset.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const target = targets.get(payload.partition);
        if (target !== undefined && BigInt(payload.lastOffset) + 1n >= target) {
          targets.delete(payload.partition);
          markReady();
        }
      });
      markReady();
      let invalid = 0;
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            if (this.set.applyRecord(m.key ? m.key.toString('utf8') : null, m.value) === 'invalid' && invalid++ < 10) {
              this.logger.warn({ partition: batch.partition, offset: m.offset }, 'invalid regulation record ignored');
            }
          }
          suppressedUsers.set(this.set.size);
          suppressionBytes.set(this.set.bytes);
        },
      });
    } catch (error) {
      await consumer.disconnect().catch(() => undefined);
      throw error;
    }
    this.consumer = consumer;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.consumer?.disconnect().catch(() => undefined);
  }
}
