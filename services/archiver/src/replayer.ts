import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Kafka, Message, Producer } from 'kafkajs';
import { decodeEnvelope, messageKey, type Envelope } from '@cdp/events';
import { javaCompatiblePartitioner } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge } from '@cdp/metrics';
import { readObjectLines } from './reader';
import { initialStatus, stateOf, type ReplaySpec, type ReplayStatus, type ReplayStore } from './replay-store';
import { isRegulated, type SelectContext } from './select';

/** The undelivered record's delivery fields: a re-queued event goes back as the plain envelope. */
const DELIVERY_FIELDS = [
  'destinationId',
  'subscriptionId',
  'attempts',
  'firstAttemptAt',
  'expiredAt',
  'lastStatus',
  'lastError',
  'lastResponseExcerpt',
] as const;

/** A cursor is one Kafka offset: object index × 2^26 + line index (objects hold far fewer lines). */
const LINES_PER_OBJECT = 2 ** 26;
export const encodeCursor = (object: number, line: number): number => object * LINES_PER_OBJECT + line;
export const decodeCursor = (offset: number): { object: number; line: number } => ({
  object: Math.floor(offset / LINES_PER_OBJECT),
  line: offset % LINES_PER_OBJECT,
});

export interface ReplayerOptions {
  kafka: Kafka;
  s3: S3Client;
  bucket: string;
  store: ReplayStore;
  /** The topic replayed events go to (cdp.deduped). */
  topic: string;
  /** The archiver's group id: replay cursors live in the groups `<groupId>-replay-<id>`. */
  groupId: string;
  select: SelectContext;
  logger: Logger;
  /** A replay whose owner did not heartbeat for this long is taken over by another replica. */
  leaseMs: number;
  /** Events per transaction at most. */
  batchSize?: number;
}

const replayedRecords = counter({
  name: 'cdp_archiver_replay_records_total',
  help: 'Archived lines read by replays, by outcome (replayed, out_of_range, regulated, unreadable)',
  labelNames: ['outcome'] as const,
});
const replaysRunning = gauge({ name: 'cdp_archiver_replays_running', help: 'Replays this replica runs (running or paused)' });
const replayProgress = gauge({
  name: 'cdp_archiver_replay_progress_ratio',
  help: 'Lines read / lines to read of each replay this replica runs',
  labelNames: ['replay'] as const,
});

class Stopped extends Error {}

/**
 * Runs replays: reads the archive objects of a replay in order and publishes its events to
 * cdp.deduped with `replay: { id, destinations, force }`, at the replay's rate. Each batch of
 * events and the replay's cursor (an offset committed for the group `<groupId>-replay-<id>`) go
 * in one Kafka transaction whose transactional id is the replay's: whichever replica runs it,
 * and however often it restarts, every event of the range is on the topic exactly once.
 * Taking a replay over fences the previous runner's producer, so two runners never both commit.
 */
export class Replayer {
  readonly owner = `${process.env.POD_NAME ?? 'archiver'}-${randomUUID().slice(0, 8)}`;
  private readonly active = new Map<string, Promise<void>>();
  private running = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ReplayerOptions) {}

  start(): void {
    this.running = true;
    const tick = () => {
      this.scan().catch((error: unknown) => this.o.logger.warn(errorFields(error), 'replay scan failed'));
    };
    tick();
    this.timer = setInterval(tick, Math.max(1_000, Math.floor(this.o.leaseMs / 3)));
  }

  /** Stops every replay at a batch boundary (its cursor is committed) and releases the leases. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.active.values());
  }

  /** Starts a replay here right away (the replica that created it), without waiting for the scan. */
  take(id: string): void {
    if (!this.running || this.active.has(id)) return;
    const run = this.run(id).finally(() => {
      this.active.delete(id);
      replaysRunning.set(this.active.size);
      replayProgress.remove(id);
    });
    this.active.set(id, run);
    replaysRunning.set(this.active.size);
  }

  /** Takes over unfinished replays whose owner stopped heartbeating. */
  private async scan(): Promise<void> {
    for (const id of await this.o.store.ids()) {
      if (!this.running || this.active.has(id)) continue;
      const [control, status] = await Promise.all([this.o.store.control(id), this.o.store.status(id)]);
      if (!control || status.done) continue;
      const heartbeat = status.heartbeatAt ? Date.parse(status.heartbeatAt) : 0;
      if (status.owner !== null && status.owner !== this.owner && Date.now() - heartbeat < this.o.leaseMs) continue;
      this.take(id);
    }
  }

  private async run(id: string): Promise<void> {
    const { store, logger } = this.o;
    const spec = await store.spec(id);
    if (!spec) return;
    const log = logger.child({ replay: id });
    const status: ReplayStatus = {
      ...initialStatus,
      ...(await store.status(id)),
      owner: this.owner,
      heartbeatAt: new Date().toISOString(),
    };
    await store.putStatus(id, status);
    const producer = this.o.kafka.producer({
      transactionalId: `${this.o.groupId}-replay-${id}`,
      createPartitioner: javaCompatiblePartitioner,
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    try {
      await producer.connect();
      // InitProducerId fences an earlier runner and aborts its open transaction: only then is
      // the committed cursor final.
      await (await producer.transaction()).abort();
      const cursor = await this.committedCursor(id);
      log.info({ cursor: decodeCursor(cursor), objects: spec.objects.length }, 'replay running');
      await this.publish(spec, cursor, status, producer);
      status.done = 'finished';
    } catch (error) {
      if (error instanceof Stopped) {
        // Stopped here: released for another replica (or this one after a restart).
        status.owner = null;
      } else if (error instanceof Cancelled) {
        status.done = 'cancelled';
      } else {
        log.error(errorFields(error), 'replay failed; another scan takes it up again');
        status.error = error instanceof Error ? error.message : String(error);
        status.owner = null;
        status.heartbeatAt = null;
      }
    } finally {
      await producer.disconnect().catch(() => undefined);
    }
    if (status.done) status.finishedAt = new Date().toISOString();
    await store.putStatus(id, status).catch((error: unknown) => log.warn(errorFields(error), 'replay status not written'));
    log.info({ done: status.done, replayed: status.replayed, skipped: status.skipped }, 'replay stopped');
  }

  private async committedCursor(id: string): Promise<number> {
    const admin = this.o.kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: `${this.o.groupId}-replay-${id}`, topics: [this.o.topic] });
      const committed = Number(offsets?.partitions.find((p) => p.partition === 0)?.offset ?? '-1');
      return committed < 0 ? 0 : committed;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private async publish(spec: ReplaySpec, start: number, status: ReplayStatus, producer: Producer): Promise<void> {
    const batchSize = Math.max(1, Math.min(this.o.batchSize ?? 500, spec.ratePerSecond));
    const from = Date.parse(spec.from);
    const to = Date.parse(spec.to);
    const replay = { id: spec.id, destinations: spec.destinations ?? [], force: spec.force };
    let { object, line } = decodeCursor(start);
    status.scanned = spec.objects.slice(0, object).reduce((n, o) => n + o.records, 0) + line;
    let begun = Date.now();
    let sent = 0;
    let lastCheck = 0;
    for (; object < spec.objects.length; object++, line = 0) {
      const lines = await readObjectLines(this.o.s3, this.o.bucket, spec.objects[object].key).catch((error: unknown) => {
        // An object rewritten away (e.g. every event of it deleted) is skipped, counted.
        if ((error as { name?: string }).name === 'NoSuchKey') return [] as string[];
        throw error;
      });
      while (line < lines.length) {
        // Between batches: heartbeat, follow pause/cancel, stop on shutdown.
        if (Date.now() - lastCheck >= 1_000) {
          if (await this.checkControl(spec.id, status)) {
            // Resumed after a pause: no burst to catch up on the paused time.
            begun = Date.now();
            sent = 0;
          }
          lastCheck = Date.now();
        }
        const messages: Message[] = [];
        const end = Math.min(lines.length, line + batchSize);
        for (; line < end; line++) {
          const outcome = this.replayed(lines[line], spec, replay, from, to);
          if ('skip' in outcome) {
            replayedRecords.labels(outcome.skip).inc();
            status.skipped++;
          } else messages.push(outcome);
        }
        const txn = await producer.transaction();
        try {
          if (messages.length > 0) await txn.send({ topic: this.o.topic, messages });
          await txn.sendOffsets({
            consumerGroupId: `${this.o.groupId}-replay-${spec.id}`,
            topics: [{ topic: this.o.topic, partitions: [{ partition: 0, offset: String(encodeCursor(object, line)) }] }],
          });
          await txn.commit();
        } catch (error) {
          await txn.abort().catch(() => undefined);
          throw error;
        }
        replayedRecords.labels('replayed').inc(messages.length);
        status.replayed += messages.length;
        status.scanned = spec.objects.slice(0, object).reduce((n, o) => n + o.records, 0) + line;
        replayProgress.labels(spec.id).set(spec.totalLines === 0 ? 1 : Math.min(1, status.scanned / spec.totalLines));
        sent += messages.length;
        // Throttle: the n-th event of this run goes out no earlier than n / rate seconds after it began.
        const due = begun + (sent / spec.ratePerSecond) * 1000 - Date.now();
        if (due > 0) await sleep(due);
      }
    }
  }

  /** Heartbeats the lease; waits while paused (true if it did); throws Cancelled or Stopped. */
  private async checkControl(id: string, status: ReplayStatus): Promise<boolean> {
    for (let paused = false; ; paused = true) {
      if (!this.running) throw new Stopped();
      const control = await this.o.store.control(id);
      status.heartbeatAt = new Date().toISOString();
      await this.o.store.putStatus(id, status);
      const state = control ? stateOf(control, status) : 'cancelled';
      if (state === 'cancelled') throw new Cancelled();
      if (state !== 'paused') return paused;
      await sleep(1_000);
    }
  }

  /** The record to publish for an archived line, or why it is skipped. */
  private replayed(
    line: string,
    spec: ReplaySpec,
    replay: { id: string; destinations: string[]; force: boolean },
    from: number,
    to: number,
  ): { key: string; value: string } | { skip: 'out_of_range' | 'regulated' | 'unreadable' } {
    let record: Envelope & Record<string, unknown>;
    try {
      record = decodeEnvelope(line) as Envelope & Record<string, unknown>;
    } catch {
      return { skip: 'unreadable' };
    }
    const at = Date.parse(record.receivedAt);
    if (at < from || at >= to) return { skip: 'out_of_range' };
    if (isRegulated(record, this.o.select)) return { skip: 'regulated' };
    let destinations = replay.destinations;
    if (spec.kind === 'undelivered') {
      destinations = [String(record.destinationId)];
      for (const field of DELIVERY_FIELDS) delete record[field];
    }
    const out: Envelope = { ...record, replay: { ...replay, destinations } };
    return { key: messageKey(record.sourceId, record.messageId), value: JSON.stringify(out) };
  }
}

class Cancelled extends Error {}
