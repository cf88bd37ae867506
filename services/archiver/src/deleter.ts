import { promisify } from 'node:util';
import { gunzip as gunzipCallback, gzip as gzipCallback } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Regulation } from '@cdp/events';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge } from '@cdp/metrics';
import { hourIndexPrefix, manifestEntryKey } from './layout';
import { listKeys, readManifest } from './reader';
import type { ManifestEntry } from './writer';

const gzip = promisify(gzipCallback);
const gunzip = promisify(gunzipCallback);

/** The regulation types whose users' events are removed from the archive. */
export const DELETES = new Set<Regulation['type']>(['SUPPRESS_WITH_DELETE', 'DELETE_ONLY']);

/** The value of cdp.regulation-status (DESIGN.md), for the archiver's stage. */
export interface RegulationStatus {
  regulationId: string;
  stage: 'archiver';
  state: 'RUNNING' | 'FINISHED' | 'FAILED';
  detail?: string;
  at: string;
}

export interface DeleterOptions {
  s3: S3Client;
  bucket: string;
  /** The sources of a space (from the workspace). */
  sourcesOf(spaceId: string): string[];
  /** Publishes a status record to cdp.regulation-status (key `regulationId:archiver`). */
  report(status: RegulationStatus): Promise<void>;
  logger: Logger;
  /** A claim (`deletions/<regulationId>.json`) older than this without a heartbeat is taken over. */
  leaseMs: number;
}

interface Claim {
  owner: string;
  state: 'RUNNING' | 'FINISHED' | 'FAILED';
  heartbeatAt: string;
  objectsRewritten: number;
  eventsDeleted: number;
  error?: string;
}

const deletedEvents = counter({
  name: 'cdp_archiver_deleted_events_total',
  help: 'Events removed from archive objects by delete regulations',
});
const rewrittenObjects = counter({
  name: 'cdp_archiver_deletion_objects_rewritten_total',
  help: 'Archive objects rewritten without a deleted user',
});
const scannedObjects = counter({ name: 'cdp_archiver_deletion_objects_scanned_total', help: 'Archive objects read by deletions' });
const pendingDeletions = gauge({ name: 'cdp_archiver_deletions_pending', help: 'Delete regulations seen and not yet finished here' });

const isPreconditionFailed = (error: unknown) =>
  (error as { name?: string }).name === 'PreconditionFailed' ||
  (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412;
const isMissing = (error: unknown) => (error as { name?: string }).name === 'NoSuchKey';

/** True when the archived line is an event of `userId` (the message's userId, as a string). */
function isUsers(line: string, userId: string): boolean {
  const message = (JSON.parse(line) as { message?: { userId?: unknown } }).message;
  const raw = message?.userId;
  return (typeof raw === 'string' || typeof raw === 'number') && String(raw) === userId;
}

/**
 * GDPR deletion in the archive: for each delete regulation of cdp.regulations (SUPPRESS_WITH_DELETE,
 * DELETE_ONLY), rewrites every object of the space's sources that holds the user's events
 * without them: the same key PUT with `If-Match` the ETag it read (S3 replaces objects
 * atomically; a concurrent rewrite makes it read again), then the manifest entry. The sources'
 * hours come from the hour index, their objects from the manifests. One replica runs a
 * regulation (claim `deletions/<regulationId>.json`, PUT with `If-None-Match`, heartbeat,
 * taken over when stale); progress and the end go to cdp.regulation-status as stage `archiver`.
 */
export class Deleter {
  readonly owner = `${process.env.POD_NAME ?? 'archiver'}-${process.pid}-${Date.now().toString(36)}`;
  private readonly queue = new Map<string, Regulation>();
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: DeleterOptions) {}

  /** Called for every regulation read from cdp.regulations (from the beginning at each start). */
  notice(regulation: Regulation): void {
    if (!DELETES.has(regulation.type) || this.queue.has(regulation.regulationId)) return;
    this.queue.set(regulation.regulationId, regulation);
    pendingDeletions.set(this.queue.size);
    this.wake?.();
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Stops after the object being rewritten; an unfinished deletion is taken up again (by the claim's lease). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const next = this.queue.values().next();
      if (next.done) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, this.o.leaseMs);
        });
        continue;
      }
      const regulation = next.value;
      let retry: boolean;
      try {
        retry = !(await this.handle(regulation));
      } catch (error) {
        this.o.logger.warn({ ...errorFields(error), regulationId: regulation.regulationId }, 'archive deletion failed; retrying');
        retry = true;
      }
      if (!this.running) return;
      this.queue.delete(regulation.regulationId);
      // Claimed by a live replica (or failed): looked at again after a lease.
      if (retry) setTimeout(() => this.notice(regulation), this.o.leaseMs).unref();
      pendingDeletions.set(this.queue.size);
    }
  }

  /** True when the regulation is finished (here or elsewhere); false to look again later. */
  private async handle(regulation: Regulation): Promise<boolean> {
    const { regulationId, spaceId, userId } = regulation;
    const claimKey = `deletions/${regulationId}.json`;
    const existing = await this.readClaim(claimKey);
    if (existing?.claim.state === 'FINISHED') return true;
    if (existing && existing.claim.owner !== this.owner && Date.now() - Date.parse(existing.claim.heartbeatAt) < this.o.leaseMs)
      return false;
    const claim: Claim = {
      owner: this.owner,
      state: 'RUNNING',
      heartbeatAt: new Date().toISOString(),
      objectsRewritten: 0,
      eventsDeleted: 0,
    };
    try {
      await this.o.s3.send(
        new PutObjectCommand({
          Bucket: this.o.bucket,
          Key: claimKey,
          Body: JSON.stringify(claim),
          ...(existing ? { IfMatch: existing.etag } : { IfNoneMatch: '*' }),
        }),
      );
    } catch (error) {
      if (isPreconditionFailed(error)) return false; // another replica claimed it first
      throw error;
    }
    const log = this.o.logger.child({ regulationId });
    log.info({ spaceId }, 'archive deletion running');
    await this.o.report({ regulationId, stage: 'archiver', state: 'RUNNING', at: new Date().toISOString() });
    let lastBeat = Date.now();
    for (const sourceId of this.o.sourcesOf(spaceId)) {
      for (const indexKey of await listKeys(this.o.s3, this.o.bucket, hourIndexPrefix(sourceId))) {
        const hour = indexKey.slice(hourIndexPrefix(sourceId).length);
        for (const entry of await readManifest(this.o.s3, this.o.bucket, sourceId, hour)) {
          if (!this.running) return false;
          const removed = await this.rewrite(entry, userId);
          if (removed > 0) {
            claim.objectsRewritten++;
            claim.eventsDeleted += removed;
          }
          if (Date.now() - lastBeat > this.o.leaseMs / 3) {
            claim.heartbeatAt = new Date().toISOString();
            await this.putClaim(claimKey, claim);
            lastBeat = Date.now();
          }
        }
      }
    }
    claim.state = 'FINISHED';
    claim.heartbeatAt = new Date().toISOString();
    await this.putClaim(claimKey, claim);
    const detail = `${claim.eventsDeleted} events removed from ${claim.objectsRewritten} archive objects`;
    await this.o.report({ regulationId, stage: 'archiver', state: 'FINISHED', detail, at: new Date().toISOString() });
    log.info({ eventsDeleted: claim.eventsDeleted, objectsRewritten: claim.objectsRewritten }, 'archive deletion finished');
    return true;
  }

  /** Removes the user's lines from one object (optimistic: If-Match its ETag, read again on a conflict); the count removed. */
  private async rewrite(entry: ManifestEntry, userId: string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      let answer;
      try {
        answer = await this.o.s3.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: entry.key }));
      } catch (error) {
        if (isMissing(error)) return 0;
        throw error;
      }
      scannedObjects.inc();
      const text = (await gunzip(Buffer.from(await answer.Body!.transformToByteArray()))).toString('utf8');
      const lines = text.split('\n').filter((l) => l.length > 0);
      const keep = lines.filter((l) => !isUsers(l, userId));
      if (keep.length === lines.length) return 0;
      const body = await gzip(Buffer.from(keep.length > 0 ? `${keep.join('\n')}\n` : '', 'utf8'));
      try {
        await this.o.s3.send(
          new PutObjectCommand({
            Bucket: this.o.bucket,
            Key: entry.key,
            Body: body,
            ContentType: 'application/x-ndjson',
            ContentEncoding: 'gzip',
            IfMatch: answer.ETag,
          }),
        );
      } catch (error) {
        if (isPreconditionFailed(error) && attempt < 10) {
          await sleep(100 * attempt);
          continue;
        }
        throw error;
      }
      await this.putManifestEntry(entry, keep, body.length);
      const removed = lines.length - keep.length;
      deletedEvents.inc(removed);
      rewrittenObjects.inc();
      return removed;
    }
  }

  private async putManifestEntry(entry: ManifestEntry, keep: string[], bytes: number): Promise<void> {
    const times = keep.map((l) => (JSON.parse(l) as { receivedAt: string }).receivedAt).sort((a, b) => Date.parse(a) - Date.parse(b));
    const updated: ManifestEntry = {
      ...entry,
      records: keep.length,
      bytes,
      minReceivedAt: times[0] ?? entry.minReceivedAt,
      maxReceivedAt: times[times.length - 1] ?? entry.maxReceivedAt,
    };
    await this.o.s3.send(
      new PutObjectCommand({
        Bucket: this.o.bucket,
        Key: manifestEntryKey(entry, entry),
        Body: JSON.stringify(updated),
        ContentType: 'application/json',
      }),
    );
  }

  private async readClaim(key: string): Promise<{ claim: Claim; etag: string } | undefined> {
    try {
      const answer = await this.o.s3.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: key }));
      return { claim: JSON.parse(await answer.Body!.transformToString('utf8')) as Claim, etag: answer.ETag! };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  private async putClaim(key: string, claim: Claim): Promise<void> {
    await this.o.s3.send(
      new PutObjectCommand({ Bucket: this.o.bucket, Key: key, Body: JSON.stringify(claim), ContentType: 'application/json' }),
    );
  }
}
