import fs from 'node:fs';
import { ClassicLevel } from 'classic-level';
import type { Logger } from '@cdp/log';
import { spoolBytes, spoolDepth } from './metrics';

export interface SpoolRecord {
  key: string;
  value: string;
  /** spaceId and userId, so the drainer can re-check suppression (set rebuilt after spooling). */
  space?: string;
  user?: string;
}

/** The spool cannot take more: the caller must not acknowledge (503). */
export class SpoolFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  /** Refuse when the volume has less free space than this (other files share it). */
  minFreeBytes: number;
  logger: Logger;
  /** How often the volume's free space is read. */
  statIntervalMs?: number;
}

export interface SpoolEntry {
  id: string;
  records: SpoolRecord[];
  bytes: number;
}

interface PendingAppend {
  records: SpoolRecord[];
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Share of SPOOL_MAX_BYTES from which the spool reports itself near full (readiness). */
export const NEAR_FULL_RATIO = 0.9;

const entryBytes = (records: SpoolRecord[]) =>
  records.reduce((n, r) => n + r.key.length + r.value.length + (r.user?.length ?? 0) + (r.space?.length ?? 0) + 24, 16);

/**
 * The local spool: a LevelDB on the pod's volume holding events Kafka could not take. One entry
 * per request (its events, in order) under a monotonic sequence key, so iteration order is
 * arrival order. Appends are grouped into one fsynced batch write ("group commit"): a request
 * is answered only after its entry is on disk.
 */
export class Spool {
  private seq = 0;
  private count = 0;
  private size = 0;
  private freeBytes = Number.POSITIVE_INFINITY;
  private pending: PendingAppend[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** Highest id deleted so far; entries are removed oldest first. */
  private removedUpTo: string | undefined;

  private constructor(
    private readonly db: ClassicLevel<string, string>,
    private readonly options: SpoolOptions,
  ) {
    this.timer = setInterval(() => void this.statVolume(), options.statIntervalMs ?? 1_000);
    this.timer.unref();
  }

  static async open(options: SpoolOptions): Promise<Spool> {
    fs.mkdirSync(options.dir, { recursive: true });
    const db = new ClassicLevel<string, string>(options.dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open().catch((error: Error & { cause?: { code?: string } }) => {
      if (error.cause?.code === 'LEVEL_LOCKED')
        throw new Error(`spool ${options.dir} is open in another process (LevelDB lock)`, { cause: error });
      throw error;
    });
    const spool = new Spool(db, options);
    // Recount what a previous process left (the drainer republishes it).
    for await (const [id, value] of db.iterator()) {
      const records = JSON.parse(value) as SpoolRecord[];
      spool.count += records.length;
      spool.size += entryBytes(records);
      spool.seq = Number(id);
    }
    await spool.statVolume();
    spool.publishGauges();
    if (spool.count > 0) options.logger.warn({ events: spool.count, bytes: spool.size }, 'spool holds events from a previous run');
    return spool;
  }

  get dir(): string {
    return this.options.dir;
  }

  get depth(): number {
    return this.count;
  }

  get bytes(): number {
    return this.size;
  }

  get isEmpty(): boolean {
    return this.count === 0 && this.pending.length === 0;
  }

  /** True when new events may soon be refused: readiness turns false so traffic goes elsewhere. */
  get isNearFull(): boolean {
    return this.size >= this.options.maxBytes * NEAR_FULL_RATIO || this.freeBytes < this.options.minFreeBytes;
  }

  /** Resolves once the records are fsynced; rejects with SpoolFullError when they don't fit. */
  append(records: SpoolRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new SpoolFullError('spool is closed'));
    const bytes = entryBytes(records);
    const queued = this.pendingBytes;
    if (this.size + queued + bytes > this.options.maxBytes) {
      return Promise.reject(new SpoolFullError(`spool would exceed ${this.options.maxBytes} bytes`));
    }
    if (this.freeBytes - queued - bytes < this.options.minFreeBytes) {
      return Promise.reject(new SpoolFullError('spool volume is nearly full'));
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ records, bytes, resolve, reject });
      this.pendingBytes += bytes;
      this.writing ??= this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      this.pendingBytes = 0;
      const ops = group.map((p) => ({ type: 'put' as const, key: String(++this.seq).padStart(16, '0'), value: JSON.stringify(p.records) }));
      try {
        await this.db.batch(ops, { sync: true });
        for (const p of group) {
          this.count += p.records.length;
          this.size += p.bytes;
          this.freeBytes -= p.bytes;
          p.resolve();
        }
        this.publishGauges();
      } catch (error) {
        this.options.logger.error({ err: { message: (error as Error).message } }, 'spool write failed');
        for (const p of group) p.reject(new SpoolFullError(`spool write failed: ${(error as Error).message}`));
      }
    }
    this.writing = undefined;
  }

  /** The oldest entries, in arrival order, up to about `maxRecords` events. */
  async oldest(maxRecords: number): Promise<SpoolEntry[]> {
    const out: SpoolEntry[] = [];
    let n = 0;
    // Start after the last deleted key so iteration does not wade through LevelDB tombstones.
    const range = this.removedUpTo ? { gt: this.removedUpTo } : {};
    for await (const [id, value] of this.db.iterator(range)) {
      const records = JSON.parse(value) as SpoolRecord[];
      out.push({ id, records, bytes: entryBytes(records) });
      n += records.length;
      if (n >= maxRecords) break;
    }
    return out;
  }

  /** Deletes entries whose events Kafka acknowledged. */
  async remove(entries: SpoolEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db.batch(
      entries.map((e) => ({ type: 'del' as const, key: e.id })),
      { sync: true },
    );
    for (const e of entries) {
      this.count -= e.records.length;
      this.size -= e.bytes;
      if (!this.removedUpTo || e.id > this.removedUpTo) this.removedUpTo = e.id;
    }
    this.publishGauges();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    while (this.writing) await this.writing;
    await this.db.close();
  }

  private publishGauges(): void {
    spoolDepth.set(this.count);
    spoolBytes.set(this.size);
  }

  private async statVolume(): Promise<void> {
    try {
      const s = await fs.promises.statfs(this.options.dir);
      this.freeBytes = s.bavail * s.bsize;
    } catch (error) {
      this.options.logger.warn({ err: { message: (error as Error).message } }, 'cannot read spool volume free space');
    }
  }
}
