import fs from 'node:fs';
import { PartitionAssigners, type Consumer, type EachBatchPayload, type Kafka } from 'kafkajs';
import {
  describeTopicConfigs,
  ensureTopics,
  FETCH_MAX_WAIT_MS,
  isGroupMembershipError,
  keepMembership,
  requireTopics,
  toInbound,
  topicNames,
  topicSettings,
  topicSpecs,
} from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { counter, gauge } from '@cdp/metrics';
import type { DedupConfig } from './config';
import { FencedError, PartitionWorker, type WorkerTopics } from './partition-worker';
import { stickyAssigner, type MemberState } from './sticky-assigner';

const rebalances = counter({ name: 'cdp_dedup_rebalances_total', help: 'Group joins (after a rebalance) of this process' });
const ownedPartitions = gauge({ name: 'cdp_dedup_owned_partitions', help: 'Input partitions this process owns' });
const lag = gauge({
  name: 'cdp_dedup_lag_messages',
  help: 'Messages behind the input high watermark, per owned partition',
  labelNames: ['partition'] as const,
});

/**
 * Consumes cdp.ingest and publishes first copies to cdp.deduped. One PartitionWorker per owned
 * partition; offsets are committed inside each worker's transactions, never by the consumer.
 */
export class DedupService {
  private readonly consumer: Consumer;
  readonly topics: WorkerTopics;
  private workers = new Map<number, PartitionWorker>();
  /** Workers being closed: a new owner of the partition waits for the store to be released. */
  private closing = new Map<number, Promise<void>>();
  private generation = 0;
  /** This member's latest assignment and when it came (sent at each join: sticky assignment). */
  private assigned: number[] = [];
  private assignedAt = 0;
  private joined = false;
  private stopping = false;
  private purgeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly config: DedupConfig,
    private readonly logger: Logger,
    private readonly onFatal: (error: unknown) => void,
  ) {
    const names = topicNames(config.CDP_TOPIC_PREFIX);
    this.topics = { input: names.ingest, output: names.deduped, dlq: names.dlq };
    this.consumer = kafka.consumer({
      groupId: config.DEDUP_GROUP_ID,
      allowAutoTopicCreation: false,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: config.KAFKA_HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
      // Read only committed output of upstream transactions (and our own, when rebuilding).
      readUncommitted: false,
      // Sticky: partitions stay with their owner or go to a member that has their store.
      // Round robin stays listed so a group mid-upgrade still agrees on a protocol.
      partitionAssigners: [stickyAssigner(() => this.memberState()), PartitionAssigners.roundRobin],
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      rebalances.inc();
      this.joined = true;
      const assigned = new Set(e.payload.memberAssignment[this.topics.input] ?? []);
      // Every join may follow a period where another member owned our partitions: take each
      // one over again (fence + repair) before processing it.
      this.generation++;
      ownedPartitions.set(assigned.size);
      this.assigned = [...assigned];
      this.assignedAt = Date.now();
      this.logger.info({ partitions: [...assigned], generation: this.generation }, 'assignment');
      for (const worker of [...this.workers.values()]) {
        lag.remove(String(worker.partition));
        void this.discard(worker);
      }
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      this.joined = false;
      this.logger.error({ ...errorFields(e.payload.error), restart: e.payload.restart }, 'consumer crashed');
      if (!e.payload.restart) this.onFatal(e.payload.error);
    });
  }

  /** What the sticky assigner keeps: owned partitions, and those with a store on this volume. */
  private memberState(): MemberState {
    const prefix = `${this.topics.input}-`;
    let stored: number[] = [];
    try {
      stored = fs
        .readdirSync(this.config.DEDUP_DATA_DIR)
        .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
        .map((name) => Number(name.slice(prefix.length)));
    } catch {
      // No data directory yet: nothing stored.
    }
    return { owned: { [this.topics.input]: this.assigned }, assignedAt: this.assignedAt, stored: { [this.topics.input]: stored } };
  }

  get isReady(): boolean {
    return this.joined && !this.stopping;
  }

  async start(): Promise<void> {
    await this.prepareTopics();
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topics.input], fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.config.DEDUP_PARTITIONS_CONCURRENTLY,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    this.purgeTimer = setInterval(() => void this.purge(), this.config.DEDUP_PURGE_INTERVAL_MS);
    this.purgeTimer.unref();
  }

  /**
   * Verifies that dedup's topics exist (cdp-topics creates them), failing the start naming any
   * missing one, and refusing an input and output with different partition counts or an output
   * kept for less than the window. With
   * KAFKA_ENSURE_TOPICS (tests, older local setups) creates them and sets cdp.deduped's retention
   * from DEDUP_WINDOW_MS; no other service sets it.
   */
  private async prepareTopics(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const specs = topicSpecs(topicSettings(this.config));
      const own = [specs.ingest, specs.deduped, specs.dlq];
      if (this.config.KAFKA_ENSURE_TOPICS) await ensureTopics(admin, own);
      else
        await requireTopics(
          admin,
          own.map((s) => s.name),
        );
      const { topics } = await admin.fetchTopicMetadata({ topics: [specs.ingest.name, specs.deduped.name] });
      const [input, output] = [specs.ingest.name, specs.deduped.name].map((name) => topics.find((t) => t.name === name)?.partitions.length);
      if (input !== output)
        throw new Error(
          `${specs.ingest.name} has ${input} partitions and ${specs.deduped.name} ${output}: they must be equal (co-partitioned)`,
        );
      // dedup rebuilds its state from cdp.deduped: a shorter retention than the window would let
      // duplicates of dropped records through after a repair.
      const retention = Number((await describeTopicConfigs(admin, [specs.deduped.name]))[specs.deduped.name]?.['retention.ms']);
      if (retention !== -1 && retention < this.config.DEDUP_WINDOW_MS) {
        throw new Error(
          `${specs.deduped.name} has retention.ms=${retention}, shorter than DEDUP_WINDOW_MS=${this.config.DEDUP_WINDOW_MS} (cdp-topics create with the same DEDUP_WINDOW_MS sets it)`,
        );
      }
    } finally {
      await admin.disconnect();
    }
  }

  /** Forgets a worker and closes it; its partition's next chunk takes the partition over again. */
  private discard(worker: PartitionWorker): Promise<void> {
    if (this.workers.get(worker.partition) === worker) this.workers.delete(worker.partition);
    const closed = worker.close().finally(() => {
      if (this.closing.get(worker.partition) === closed) this.closing.delete(worker.partition);
    });
    this.closing.set(worker.partition, closed);
    return closed;
  }

  private async workerFor(partition: number, heartbeat: () => Promise<void>): Promise<PartitionWorker> {
    const existing = this.workers.get(partition);
    if (existing && existing.generation === this.generation) return existing;
    if (existing) await this.discard(existing);
    await this.closing.get(partition);
    const worker = new PartitionWorker(this.kafka, this.config, this.topics, partition, this.generation, this.logger);
    this.workers.set(partition, worker);
    try {
      await worker.init(heartbeat);
    } catch (error) {
      await this.discard(worker);
      throw error;
    }
    return worker;
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (batch.isEmpty()) return;
    const alive = () => !this.stopping && isRunning() && !isStale();
    const messages = batch.messages.map((msg) => toInbound(batch.topic, batch.partition, msg));
    let delay = 200;
    while (alive()) {
      let worker: PartitionWorker | undefined;
      try {
        worker = await this.workerFor(batch.partition, heartbeat);
        const result = await worker.process(messages);
        resolveOffset(result.lastOffset);
        lag.labels(String(batch.partition)).set(Math.max(0, Number(batch.highWatermark) - Number(result.lastOffset) - 1));
      } catch (error) {
        // Whatever failed (transaction, store write, takeover), the retry starts from a fresh
        // takeover: fence again and repair the store from the output, so a chunk whose
        // transaction did commit is never published twice.
        if (worker) await this.discard(worker);
        if (isGroupMembershipError(error)) {
          // The group is rebalancing (seen by a heartbeat during a repair): kafkajs rejoins when
          // eachBatch throws it; retrying here would only keep this member out of the group.
          throw error;
        }
        if (error instanceof FencedError) {
          // Another process owns this partition now. If the group dropped this member (it was
          // frozen or cut off), the heartbeat says so and kafkajs rejoins at once; otherwise the
          // rebalance that gave the partition away will tell us.
          this.logger.warn({ partition: batch.partition }, error.message);
          await keepMembership(heartbeat);
          await sleep(1_000);
          return;
        }
        this.logger.warn({ ...errorFields(error), partition: batch.partition, retryInMs: delay }, 'chunk failed; retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
        await keepMembership(heartbeat);
        continue;
      }
      // Outside the retry: the chunk is committed; a rebalance seen here is kafkajs's to handle.
      await keepMembership(heartbeat);
      return;
    }
  }

  private async purge(): Promise<void> {
    for (const worker of this.workers.values()) {
      try {
        await worker.purgeExpired();
      } catch (error) {
        this.logger.warn({ ...errorFields(error), partition: worker.partition }, 'purge failed');
      }
    }
  }

  /** Testing and operations: purge now instead of waiting for the timer. */
  purgeNow(): Promise<void> {
    return this.purge();
  }

  /** Leaves the group once the in-flight chunks ended (each in a committed or aborted transaction). */
  async stopConsuming(): Promise<void> {
    this.stopping = true;
    clearInterval(this.purgeTimer);
    await this.consumer.disconnect();
  }

  /** Closes the partition workers (their transactional producers and stores); after stopConsuming. */
  async closeWorkers(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => this.discard(w)));
    await Promise.all(this.closing.values());
  }
}
