import { randomUUID } from 'node:crypto';
import { GetObjectCommand, NoSuchKey, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SOURCE_ID } from '@cdp/events';
import { z } from '@cdp/config';
import { hourOf, type ArchiveKind } from './layout';
import { listKeys, readManifest } from './reader';

/** The longest time range one replay may cover: its object list is kept in one S3 object. */
export const MAX_REPLAY_RANGE_MS = 400 * 24 * 3600 * 1000;

/** What a caller asks for (admin API `POST /v1/replays`, `cdp-replay start`). */
export const replayRequestSchema = z
  .strictObject({
    sourceId: z.string().regex(SOURCE_ID, 'must be a source id'),
    /** Events with receivedAt in [from, to) are replayed. */
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    /** `raw`: the archived stream, to `destinations`. `undelivered`: each event back to its own destination. */
    kind: z.enum(['raw', 'undelivered']).default('raw'),
    /** raw: the destinations that receive the history (required). undelivered: only these destinations' events (all when omitted). */
    destinations: z.array(z.string().min(1).max(200)).min(1).max(100).optional(),
    /** Deliver again even what a destination received before (replay.force: the replay id joins the idempotency key). */
    force: z.boolean().default(false),
    /** Events per second; the archiver's ARCHIVER_REPLAY_RATE when omitted. */
    ratePerSecond: z.number().int().positive().max(1_000_000).optional(),
  })
  .superRefine((r, ctx) => {
    const span = Date.parse(r.to) - Date.parse(r.from);
    if (!(span > 0)) ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be after from' });
    if (span > MAX_REPLAY_RANGE_MS) ctx.addIssue({ code: 'custom', path: ['to'], message: 'the range may cover at most 400 days' });
    if (r.kind === 'raw' && !r.destinations)
      ctx.addIssue({ code: 'custom', path: ['destinations'], message: 'is required to replay the raw stream' });
  });
export type ReplayRequest = z.infer<typeof replayRequestSchema>;

/** One archive object a replay reads, in the order it reads them. */
export interface ReplayObject {
  key: string;
  records: number;
  destinationId?: string;
}

/** Written once at creation: the request and the objects it covers at that moment. */
export interface ReplaySpec extends Omit<ReplayRequest, 'ratePerSecond'> {
  id: string;
  ratePerSecond: number;
  createdAt: string;
  objects: ReplayObject[];
  /** Lines of all its objects: what the progress counts against. */
  totalLines: number;
}

/** Set by the admin API (last writer wins). */
export interface ReplayControl {
  state: 'running' | 'paused' | 'cancelled';
  at: string;
}

/** Written only by the replica running the replay (its lease and progress). */
export interface ReplayStatus {
  owner: string | null;
  heartbeatAt: string | null;
  /** Lines read (replayed or skipped), as of the last heartbeat; the exact cursor is in Kafka. */
  scanned: number;
  replayed: number;
  /** Lines outside the time range, of deleted users, or not readable. */
  skipped: number;
  done: 'finished' | 'cancelled' | 'failed' | null;
  error: string | null;
  finishedAt: string | null;
}

export type ReplayState = ReplayControl['state'] | 'finished' | 'failed';

/** What the admin API answers for a replay. */
export interface ReplayView extends Omit<ReplaySpec, 'objects'> {
  state: ReplayState;
  objects: number;
  progress: { scanned: number; total: number; replayed: number; skipped: number; ratio: number };
  owner: string | null;
  heartbeatAt: string | null;
  error: string | null;
  finishedAt: string | null;
}

export const initialStatus: ReplayStatus = {
  owner: null,
  heartbeatAt: null,
  scanned: 0,
  replayed: 0,
  skipped: 0,
  done: null,
  error: null,
  finishedAt: null,
};

const PREFIX = 'replays/';

/** Every hour (`yyyy-mm-ddThh`) that [from, to) touches. */
export function hoursBetween(from: string, to: string): string[] {
  const hours: string[] = [];
  const end = Date.parse(to);
  for (let t = Date.parse(hourOf(from) + ':00:00Z'); t < end; t += 3600_000) hours.push(new Date(t).toISOString().slice(0, 13));
  return hours;
}

export function stateOf(control: ReplayControl, status: ReplayStatus): ReplayState {
  return status.done ?? control.state;
}

/**
 * Replays in S3 under `replays/<id>/`: `spec.json` (the request and its object list, written
 * once), `control.json` (running / paused / cancelled, from the admin API) and `status.json`
 * (lease and progress, from the replica running it). One writer per object, so a pause never
 * races a progress update.
 */
export class ReplayStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  /** Lists the objects of the range from the manifests and stores a new running replay. */
  async create(request: ReplayRequest, defaultRate: number): Promise<ReplaySpec> {
    const objects: ReplayObject[] = [];
    const wanted = request.destinations ? new Set(request.destinations) : undefined;
    for (const hour of hoursBetween(request.from, request.to)) {
      const entries = await readManifest(this.client, this.bucket, request.sourceId, hour);
      const inRange = entries.filter(
        (e) =>
          e.kind === (request.kind as ArchiveKind) &&
          Date.parse(e.maxReceivedAt) >= Date.parse(request.from) &&
          Date.parse(e.minReceivedAt) < Date.parse(request.to) &&
          (e.kind === 'raw' || !wanted || wanted.has(e.destinationId!)),
      );
      inRange.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (const e of inRange) objects.push({ key: e.key, records: e.records, destinationId: e.destinationId });
    }
    const spec: ReplaySpec = {
      ...request,
      id: randomUUID(),
      ratePerSecond: request.ratePerSecond ?? defaultRate,
      createdAt: new Date().toISOString(),
      objects,
      totalLines: objects.reduce((n, o) => n + o.records, 0),
    };
    await this.put(`${PREFIX}${spec.id}/spec.json`, spec);
    await this.putStatus(spec.id, initialStatus);
    await this.putControl(spec.id, 'running');
    return spec;
  }

  async ids(): Promise<string[]> {
    const keys = await listKeys(this.client, this.bucket, PREFIX);
    return keys.filter((k) => k.endsWith('/control.json')).map((k) => k.slice(PREFIX.length, -'/control.json'.length));
  }

  spec(id: string): Promise<ReplaySpec | undefined> {
    return this.get<ReplaySpec>(`${PREFIX}${id}/spec.json`);
  }

  control(id: string): Promise<ReplayControl | undefined> {
    return this.get<ReplayControl>(`${PREFIX}${id}/control.json`);
  }

  async status(id: string): Promise<ReplayStatus> {
    return (await this.get<ReplayStatus>(`${PREFIX}${id}/status.json`)) ?? initialStatus;
  }

  putControl(id: string, state: ReplayControl['state']): Promise<void> {
    return this.put(`${PREFIX}${id}/control.json`, { state, at: new Date().toISOString() } satisfies ReplayControl);
  }

  putStatus(id: string, status: ReplayStatus): Promise<void> {
    return this.put(`${PREFIX}${id}/status.json`, status);
  }

  async view(id: string): Promise<ReplayView | undefined> {
    const [spec, control, status] = await Promise.all([this.spec(id), this.control(id), this.status(id)]);
    if (!spec || !control) return undefined;
    const { objects, ...rest } = spec;
    return {
      ...rest,
      state: stateOf(control, status),
      objects: objects.length,
      progress: {
        scanned: status.scanned,
        total: spec.totalLines,
        replayed: status.replayed,
        skipped: status.skipped,
        ratio: spec.totalLines === 0 ? 1 : Math.min(1, status.scanned / spec.totalLines),
      },
      owner: status.owner,
      heartbeatAt: status.heartbeatAt,
      error: status.error,
      finishedAt: status.finishedAt,
    };
  }

  private async put(key: string, value: unknown): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }),
    );
  }

  private async get<T>(key: string): Promise<T | undefined> {
    try {
      const answer = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return JSON.parse(await answer.Body!.transformToString('utf8')) as T;
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }
}
