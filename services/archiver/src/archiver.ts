import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { backoffMs, deadLetterRecord, DeadLetterWriter, FETCH_MAX_WAIT_MS, toInbound, type DeadLetter } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge, histogram } from '@cdp/metrics';
import type { ArchiveKind } from './layout';
import { isRegulated, selectRecord, type SelectContext } from './select';
import type { ArchiveRecord, ArchiveWriter } from './writer';

export interface ArchiverOptions {
  kafka: Kafka;
  groupId: string;
  /** Topic → what it holds: cdp.deduped raw, cdp.undelivered undelivered. */
  topics: Record<string, ArchiveKind>;
  dlqTopic: string;
  writer: ArchiveWriter;
  select: SelectContext;
  logger: Logger;
  flushBytes: number;
  flushAgeMs: number;
  partitionsConcurrently: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
}

/** The records read from one partition since its last committed offset, not yet uploaded. */
interface PartitionBuffer {
  records: ArchiveRecord[];
  letters: DeadLetter[];
  bytes: number;
  /** Offset after the last record read (the offset to commit once uploaded). */
  nextOffset: bigint;
  startedAt: number;
}

const skipped = counter({
  name: 'cdp_archiver_records_skipped_total',
  help: 'Consumed records not archived, by reason (replay, regulated, dead_letter)',
  labelNames: ['reason'] as const,
});
const flushSeconds = histogram({
  name: 'cdp_archiver_flush_duration_seconds',
  help: 'One partition flush: upload of its objects and manifest entries, then the offset commit',
  labelNames: ['trigger'] as const,
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
});
const bufferedBytes = gauge({ name: 'cdp_archiver_buffered_bytes', help: 'Record bytes read and not yet uploaded, all partitions' });
const flushFailures = counter({
  name: 'cdp_archiver_flush_failures_total',
  help: 'Flush attempts that failed (S3 or the commit) and were retried',
});
const lag = gauge({
  name: 'cdp_archiver_lag_messages',
  help: 'Messages between the last read offset and the high watermark',
  labelNames: ['topic', 'partition'] as const,
});

type FlushTrigger = 'size' | 'age' | 'shutdown';

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * Consumes the archived topics and commits a partition's offset only after S3 acknowledged the
 * objects holding everything before it. A partition has at most one flush that is uploaded but
 * not committed, and its next flush starts only after that commit: a restart (or the next
 * owner) re-reads from the committed offset, and the objects it writes start at the same first
 * offsets as the lost flush's, so they replace them (same keys) instead of adding copies.
 * Offsets are committed with the DLQ copies of the flush's poison records in one transaction
 * (DeadLetterWriter).
 */
export class Archiver {
  readonly consumer: Consumer;
  private readonly deadLetters: DeadLetterWriter;
  private readonly buffers = new Map<string, PartitionBuffer>();
  /** Per partition: the flush in progress; the next one waits for it, across rebalances too. */
  private readonly flushes = new Map<string, Promise<void>>();
  /** Per partition: the offset this process last committed (records below it are archived). */
  private readonly committed = new Map<string, bigint>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private draining = false;
  private joined = false;
  private fatalError: unknown;

  constructor(private readonly o: ArchiverOptions) {
    this.consumer = o.kafka.consumer({
      groupId: o.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: o.sessionTimeoutMs,
      heartbeatInterval: o.heartbeatIntervalMs,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
    });
    this.deadLetters = new DeadLetterWriter({ kafka: o.kafka, groupId: o.groupId, dlqTopic: o.dlqTopic, logger: o.logger });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      // After a join kafkajs reads every assigned partition again from its committed offset:
      // what was buffered is read again, so it is dropped here.
      this.buffers.clear();
      bufferedBytes.set(0);
      this.joined = true;
      this.deadLetters.retain(e.payload.memberAssignment);
      o.logger.info({ assignment: e.payload.memberAssignment }, 'consumer group joined');
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      this.joined = false;
      o.logger.error({ ...errorFields(e.payload.error), restart: e.payload.restart }, 'kafka consumer crashed');
      if (!e.payload.restart) this.fatalError = e.payload.error;
    });
  }

  readiness(): { ok: boolean; detail: string } {
    if (this.fatalError !== undefined) return { ok: false, detail: 'consumer stopped' };
    return this.running && this.joined ? { ok: true, detail: 'consuming' } : { ok: false, detail: 'joining the consumer group' };
  }

  get fatal(): unknown {
    return this.fatalError;
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: Object.keys(this.o.topics), fromBeginning: true });
    this.running = true;
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.o.partitionsConcurrently,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.timer = setInterval(() => this.flushAged(), Math.min(1_000, this.o.flushAgeMs));
  }

  /**
   * SIGTERM drains: stops taking records, uploads and commits every partition's buffer while
   * still a member of the group (so no other member owns those partitions meanwhile), then
   * leaves. A flush that keeps failing is given up when the shutdown deadline ends the process;
   * its records are then read again by the next owner.
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    // eachBatch appends to a buffer only between awaits after checking `draining`: from here on
    // no record joins a buffer, so the flushes below hold everything read.
    this.draining = true;
    const assigned = Object.keys(this.o.topics).map((topic) => ({ topic }));
    if (this.joined) this.consumer.pause(assigned);
    const keys = [...this.buffers.keys()];
    await Promise.all(
      keys.map((key) => {
        const [topic, partition] = key.split('\u0000');
        return this.flush(topic, Number(partition), 'shutdown');
      }),
    );
    await Promise.all(this.flushes.values());
    this.running = false;
    await this.consumer.disconnect();
  }

  async close(): Promise<void> {
    await this.deadLetters.close();
  }

  private async eachBatch({ batch, heartbeat, isRunning, isStale, resolveOffset }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    const kind = this.o.topics[topic];
    const key = tpKey(topic, partition);
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.draining) return;
      const offset = BigInt(message.offset);
      // A flush of an earlier generation committed past it: archived already.
      if (offset < (this.committed.get(key) ?? 0n)) {
        resolveOffset(message.offset);
        continue;
      }
      let buffer = this.buffers.get(key);
      if (!buffer) {
        buffer = { records: [], letters: [], bytes: 0, nextOffset: offset, startedAt: Date.now() };
        this.buffers.set(key, buffer);
      }
      const selection = selectRecord(kind, message.offset, message.value, this.o.select);
      if ('archive' in selection) {
        buffer.records.push(selection.archive);
        buffer.bytes += selection.archive.line.length + 1;
        bufferedBytes.inc(selection.archive.line.length + 1);
      } else if ('skip' in selection) {
        skipped.labels(selection.skip).inc();
      } else {
        skipped.labels('dead_letter').inc();
        buffer.letters.push({
          offset: message.offset,
          record: deadLetterRecord(toInbound(topic, partition, message), 'archiver', selection.poison),
        });
      }
      buffer.nextOffset = offset + 1n;
      // Moves the fetch position only (autoCommit is off): the commit comes with the flush.
      resolveOffset(message.offset);
      if (buffer.bytes >= this.o.flushBytes) {
        // Inside the batch: the group does not rebalance this partition away until the flush is done.
        await this.flush(topic, partition, 'size');
        await heartbeat();
      }
    }
    lag
      .labels(topic, String(partition))
      .set(Math.max(0, Number(BigInt(batch.highWatermark) - (this.buffers.get(key)?.nextOffset ?? BigInt(batch.lastOffset()) + 1n))));
    await heartbeat();
  }

  private flushAged(): void {
    const now = Date.now();
    for (const [key, buffer] of this.buffers) {
      if (now - buffer.startedAt < this.o.flushAgeMs || this.flushes.has(key)) continue;
      const [topic, partition] = key.split('\u0000');
      void this.flush(topic, Number(partition), 'age');
    }
  }

  /** Takes the partition's buffer, uploads it, commits past it; the next flush of the partition waits for this one. */
  private flush(topic: string, partition: number, trigger: FlushTrigger): Promise<void> {
    const key = tpKey(topic, partition);
    const buffer = this.buffers.get(key);
    if (!buffer) return this.flushes.get(key) ?? Promise.resolve();
    this.buffers.delete(key);
    bufferedBytes.dec(buffer.bytes);
    const previous = this.flushes.get(key) ?? Promise.resolve();
    const run = previous.then(() => this.upload(topic, partition, buffer, trigger));
    const tracked = run.finally(() => {
      if (this.flushes.get(key) === tracked) this.flushes.delete(key);
    });
    this.flushes.set(key, tracked);
    return tracked;
  }

  private async upload(topic: string, partition: number, buffer: PartitionBuffer, trigger: FlushTrigger): Promise<void> {
    const key = tpKey(topic, partition);
    const started = Date.now();
    // An earlier flush (of a previous generation) may have committed past part of this buffer.
    const floor = this.committed.get(key) ?? 0n;
    // A regulation that arrived after a record was read still keeps it out of the archive.
    const records = buffer.records.filter(
      (r) => BigInt(r.offset) >= floor && !isRegulated({ sourceId: r.group.sourceId, message: { userId: r.userId } }, this.o.select),
    );
    if (buffer.nextOffset <= floor) return;
    for (let attempt = 1; ; attempt++) {
      try {
        if (records.length > 0) await this.o.writer.writeFlush(topic, partition, records);
        const { committed } = await this.deadLetters.commit(topic, partition, buffer.nextOffset, buffer.letters);
        this.committed.set(key, committed > buffer.nextOffset ? committed : buffer.nextOffset);
        flushSeconds.labels(trigger).observe((Date.now() - started) / 1000);
        return;
      } catch (error) {
        flushFailures.inc();
        this.o.logger.warn({ ...errorFields(error), topic, partition, attempt }, 'archive flush failed; retrying');
        if (!this.running) return; // the next owner reads it again from the committed offset
        await sleep(backoffMs(attempt, { initialMs: 500, maxMs: 15_000 }));
      }
    }
  }
}
