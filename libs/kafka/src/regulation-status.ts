// One stage's part of each regulation, reported on the compacted cdp.regulation-status topic
// (key `regulationId:stage`). Every stage that acts on cdp.regulations (tapi, identity, and
// transform, archiver, destinations next) reports through this one helper: it counts the
// regulation's records the stage handled (a regulation carries how many it published,
// `subjects`), and once all were handled reports FINISHED, or FAILED when any failed. A stage
// with several replicas reads the whole topic in each (CompactedTopicFollower), so each replica
// reports once its own follower is past the regulation's records; the key keeps the last.
import { regulationStatusKey, type Regulation, type RegulationStatus } from '@cdp/events';
import { errorFields, type Logger } from '@cdp/log';
import { counter } from '@cdp/metrics';
import type { Kafka } from 'kafkajs';
import { BatchingProducer } from './producer';

export interface RegulationReporterOptions {
  kafka: Kafka;
  /** cdp.regulation-status. */
  topic: string;
  /** The stage's name in the key and the value (`tapi`, `identity`, …). */
  stage: string;
  logger: Logger;
  /** Regulations in progress kept in memory; past it the oldest are forgotten (their records were compacted away). */
  maxOpen?: number;
  now?: () => number;
}

interface Open {
  subjects: number | undefined;
  handled: Set<string>;
  failed: number;
  detail?: string;
}

const reports = counter({
  name: 'cdp_regulation_reports_total',
  help: 'Regulation status reports sent to cdp.regulation-status, by stage and status',
  labelNames: ['stage', 'status'] as const,
});

export class RegulationReporter {
  private readonly open = new Map<string, Open>();
  private readonly due = new Map<string, RegulationStatus>();
  private readonly producer: BatchingProducer;
  private sending: Promise<void> = Promise.resolve();
  private connected: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: RegulationReporterOptions) {
    this.producer = new BatchingProducer(options.kafka, { logger: options.logger });
    this.now = options.now ?? Date.now;
  }

  /** Connects the producer (the first flush does it too). */
  connect(): Promise<void> {
    this.connected ??= this.producer.connect();
    return this.connected;
  }

  /**
   * The stage handled one record of a regulation (applied a suppression, deleted a user's
   * data, …); `error` when its part failed for this record. Re-handling a record is harmless.
   */
  handled(regulation: Regulation, error?: string): void {
    const id = regulation.regulationId;
    let entry = this.open.get(id);
    if (!entry) {
      entry = { subjects: regulation.subjects, handled: new Set(), failed: 0 };
      this.open.set(id, entry);
      const max = this.options.maxOpen ?? 10_000;
      while (this.open.size > max) this.open.delete(this.open.keys().next().value as string);
    }
    const subject = `${regulation.spaceId}:${regulation.userId}`;
    if (!entry.handled.has(subject)) {
      entry.handled.add(subject);
      if (error !== undefined) {
        entry.failed++;
        entry.detail ??= error.slice(0, 500);
      }
    }
    const complete = entry.subjects === undefined || entry.handled.size >= entry.subjects;
    if (!complete) return;
    this.open.delete(id);
    this.due.set(regulationStatusKey(id, this.options.stage), {
      regulationId: id,
      stage: this.options.stage,
      status: entry.failed > 0 ? 'FAILED' : 'FINISHED',
      reportedAt: new Date(this.now()).toISOString(),
      handled: entry.handled.size,
      failed: entry.failed,
      ...(entry.detail !== undefined && { detail: entry.detail }),
    });
  }

  /** Reports a stage status directly (e.g. RUNNING when a long part starts, FAILED for the whole regulation, or another stage's: one report per regulation and stage is due at a time). */
  report(status: RegulationStatus): void {
    this.due.set(regulationStatusKey(status.regulationId, status.stage), status);
  }

  /** Sends the reports due, in the background, one send at a time; a failed send keeps them for the next. */
  flush(): Promise<void> {
    this.sending = this.sending.then(async () => {
      if (this.due.size === 0) return;
      const batch = [...this.due.values()];
      this.due.clear();
      try {
        await this.connect();
        await this.producer.send(
          this.options.topic,
          batch.map((s) => ({ key: regulationStatusKey(s.regulationId, s.stage), value: JSON.stringify(s) })),
        );
        for (const s of batch) reports.labels(s.stage, s.status).inc();
      } catch (error) {
        this.connected = undefined;
        for (const s of batch) {
          const key = regulationStatusKey(s.regulationId, s.stage);
          if (!this.due.has(key)) this.due.set(key, s);
        }
        this.options.logger.warn({ ...errorFields(error), reports: batch.length }, 'regulation status not sent; will retry');
        setTimeout(() => void this.flush(), 1_000).unref();
      }
    });
    return this.sending;
  }

  /** Sends what is due, then disconnects. */
  async close(): Promise<void> {
    if (this.due.size > 0) await this.flush();
    await this.sending;
    if (this.connected) await this.producer.disconnect();
  }
}
