import { exceedsLimit, recordBytes, recordRefusal, splitByBytes, withDeadline } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import { activeCluster, clusterSwitches, publishDuration, publishFailures, spoolDrained } from './metrics';
import type { ParkedRecords } from './parked';
import { SpoolFullError, type Spool, type SpoolEntry, type SpoolRecord } from './spool';

export type ClusterName = 'primary' | 'secondary';
export type ForceMode = 'auto' | ClusterName;
export type StoredIn = ClusterName | 'spool';

/** What the publisher needs from a Kafka cluster (a BatchingProducer plus a cheap probe). */
export interface ClusterSender {
  send(topic: string, messages: { key: string; value: string }[]): Promise<void>;
  /** Cheap liveness check (metadata request), used to decide when to fail back. */
  probe(): Promise<void>;
  /** Connects if not connected; called in the background until it succeeds. */
  ensureConnected(): Promise<void>;
  readonly isConnected: boolean;
  /** A send is hanging past the timeout: don't queue more copies behind it. */
  readonly isStalled?: boolean;
  /** The largest record batch the topic takes (its max.message.bytes, capped by the brokers'). */
  maxMessageBytes?(): Promise<number>;
}

/** Drain sends are split under this when a cluster's limit cannot be read (Kafka's default is 1,048,588). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_000_000;

export interface PublisherOptions {
  topic: string;
  primary: ClusterSender;
  secondary?: ClusterSender;
  spool: Spool;
  /** Where the drainer moves spooled records Kafka refuses for good. */
  parked: ParkedRecords;
  logger: Logger;
  /** A Kafka attempt slower than this counts as failed; the events go to the next target. */
  publishTimeoutMs: number;
  /** A failed cluster is skipped this long before a request tries it again. */
  probeIntervalMs: number;
  /** Consecutive failures of the primary after which the secondary becomes active. */
  failoverErrorThreshold: number;
  /** p90 latency of the primary's recent publishes above which the secondary becomes active. */
  failoverLatencyMs: number;
  failbackProbeIntervalMs: number;
  drainBatchMessages: number;
  /** Spooled events failing this (suppressed since) are dropped when drained. */
  keepOnDrain?: (record: SpoolRecord) => boolean;
  /** While false, new events go to the spool (e.g. the suppression set is not rebuilt yet). */
  kafkaAllowed?: () => boolean;
}

const LATENCY_WINDOW = 50;
const LIMIT_RETRY_MS = 30_000;
const FAILBACK_PROBES = 3;

class ClusterState {
  consecutiveFailures = 0;
  skipUntil = 0;
  okProbes = 0;
  /** The topic's record batch limit once read (see limitOf). */
  knownLimit: number | undefined;
  limitUnreadableLogged = false;
  /** After a failed read, the next one waits until then (describeConfigs may be denied for good). */
  limitRetryAt = 0;
  private latencies: number[] = [];

  constructor(
    readonly name: ClusterName,
    readonly sender: ClusterSender,
  ) {}

  ok(latencyMs: number): void {
    this.consecutiveFailures = 0;
    this.skipUntil = 0;
    this.latencies.push(latencyMs);
    if (this.latencies.length > LATENCY_WINDOW) this.latencies.shift();
  }

  failed(now: number, intervalMs: number): void {
    this.consecutiveFailures++;
    this.okProbes = 0;
    this.skipUntil = now + intervalMs;
  }

  p90(): number | undefined {
    if (this.latencies.length < 20) return undefined;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length * 0.9)];
  }

  resetLatency(): void {
    this.latencies = [];
  }
}

/** A spooled record on its way out, with its parked-record id should Kafka refuse it. */
interface Drained {
  id: string;
  record: SpoolRecord;
}

/** exceedsLimit, with a check on string lengths first (UTF-8 takes at most 3 bytes per UTF-16 unit) so small events cost nothing. */
const mayExceed = (r: SpoolRecord, limit: number) => (r.key.length + r.value.length) * 3 + 64 > limit && exceedsLimit(r, limit);

/**
 * Stores each request's events durably before the client is answered: in the active Kafka
 * cluster (acks=all), else the other cluster, else the fsynced local spool. A drainer
 * republishes the spool in arrival order and deletes entries only after Kafka acknowledged them.
 */
export class Publisher {
  private readonly primary: ClusterState;
  private readonly secondary: ClusterState | undefined;
  private active: ClusterState;
  private force: ForceMode = 'auto';
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly options: PublisherOptions) {
    this.primary = new ClusterState('primary', options.primary);
    this.secondary = options.secondary ? new ClusterState('secondary', options.secondary) : undefined;
    this.active = this.primary;
    this.showActive();
  }

  get activeCluster(): ClusterName {
    return this.active.name;
  }

  get forceMode(): ForceMode {
    return this.force;
  }

  /** One line on where events go and why: readiness detail, drain-wait log, test failures. */
  describe(): string {
    const now = Date.now();
    const clusters = [this.primary, this.secondary]
      .filter((c): c is ClusterState => c !== undefined)
      .map((c) => {
        const flags = [c.sender.isConnected ? 'connected' : 'disconnected'];
        if (c.sender.isStalled === true) flags.push('stalled');
        if (c.consecutiveFailures > 0) flags.push(`${c.consecutiveFailures} failures`);
        if (c.skipUntil > now) flags.push(`skipped ${c.skipUntil - now} ms more`);
        return `${c.name} ${flags.join(', ')}`;
      });
    return `active ${this.active.name}, mode ${this.force}, spool ${this.options.spool.depth} events; ${clusters.join('; ')}`;
  }

  /** Operator override from the runtime config; 'auto' returns to health-based selection. */
  setForce(mode: ForceMode): void {
    if (mode === this.force) return;
    if (mode === 'secondary' && !this.secondary) {
      this.options.logger.warn('cannot force the secondary cluster: none configured');
      return;
    }
    this.options.logger.info({ from: this.force, to: mode }, 'cluster selection mode changed');
    this.force = mode;
    if (mode !== 'auto') this.switchTo(mode === 'primary' ? this.primary : this.secondary!, 'forced');
  }

  start(): void {
    this.running = true;
    this.loops = [this.connectLoop(), this.drainLoop(), this.failbackLoop()];
  }

  /** Stops the background loops (the spool keeps what it holds for the next start). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private order(): ClusterState[] {
    if (this.force === 'primary') return [this.primary];
    if (this.force === 'secondary' && this.secondary) return [this.secondary];
    const other = this.active === this.primary ? this.secondary : this.primary;
    return other ? [this.active, other] : [this.active];
  }

  /** Resolves once the records are durable (Kafka ack or spool fsync); SpoolFullError otherwise. */
  async publish(records: SpoolRecord[]): Promise<StoredIn> {
    if (records.length === 0) return this.active.name;
    const started = performance.now();
    // Records go to the producer as they are (kafkajs ignores the extra space/user fields).
    const messages = records;
    if (this.options.kafkaAllowed?.() !== false && this.options.spool.isEmpty) {
      for (const cluster of this.order()) {
        if (!this.usable(cluster) || Date.now() < cluster.skipUntil) continue;
        // A record over the topic's limit would fail the whole produce request, other requests'
        // events included: spool it, the drainer parks it.
        if (cluster.knownLimit !== undefined && records.some((r) => mayExceed(r, cluster.knownLimit!))) break;
        try {
          await withDeadline(cluster.sender.send(this.options.topic, messages), this.options.publishTimeoutMs);
          const ms = performance.now() - started;
          cluster.ok(ms);
          publishDuration.labels(cluster.name).observe(ms / 1000);
          this.checkLatency(cluster);
          return cluster.name;
        } catch (error) {
          const refusal = recordRefusal(error);
          if (refusal) {
            // Kafka refuses these records, not a failure of the cluster (no failover): to the
            // spool, whose drainer sends them apart and parks what is refused again.
            this.options.logger.warn(
              { reason: refusal, cluster: cluster.name, events: records.length },
              'kafka refused the records; spooled',
            );
            break;
          }
          this.noteFailure(cluster, error);
        }
      }
    }
    await this.options.spool.append(records);
    publishDuration.labels('spool').observe((performance.now() - started) / 1000);
    return 'spool';
  }

  private usable(cluster: ClusterState): boolean {
    return cluster.sender.isConnected && cluster.sender.isStalled !== true;
  }

  private noteFailure(cluster: ClusterState, error: unknown): void {
    cluster.failed(Date.now(), this.options.probeIntervalMs);
    publishFailures.labels(cluster.name).inc();
    this.options.logger.warn(
      { ...errorFields(error), cluster: cluster.name, failures: cluster.consecutiveFailures },
      'publish to kafka failed',
    );
    if (
      this.force === 'auto' &&
      cluster === this.primary &&
      this.active === this.primary &&
      this.secondary &&
      cluster.consecutiveFailures >= this.options.failoverErrorThreshold
    ) {
      this.switchTo(this.secondary, 'errors');
    }
  }

  private checkLatency(cluster: ClusterState): void {
    if (this.force !== 'auto' || cluster !== this.primary || this.active !== this.primary || !this.secondary) return;
    const p90 = cluster.p90();
    if (p90 !== undefined && p90 > this.options.failoverLatencyMs) {
      cluster.resetLatency();
      cluster.okProbes = 0;
      this.switchTo(this.secondary, 'latency');
    }
  }

  private switchTo(cluster: ClusterState, cause: string): void {
    if (this.active === cluster) return;
    this.options.logger.warn({ from: this.active.name, to: cluster.name, cause }, 'switching active kafka cluster');
    this.active = cluster;
    clusterSwitches.labels(cluster.name, cause).inc();
    this.showActive();
  }

  private showActive(): void {
    activeCluster.labels('primary').set(this.active === this.primary ? 1 : 0);
    if (this.secondary) activeCluster.labels('secondary').set(this.active === this.secondary ? 1 : 0);
  }

  /** One connect attempt for each cluster not connected (failures are logged at debug). */
  async connect(): Promise<void> {
    for (const c of [this.primary, this.secondary]) {
      if (c && !c.sender.isConnected) {
        await c.sender
          .ensureConnected()
          .catch((error) => this.options.logger.debug({ ...errorFields(error), cluster: c.name }, 'kafka connect failed'));
      }
    }
  }

  private async connectLoop(): Promise<void> {
    while (this.running) {
      await this.connect();
      // Learn the size limits early: publish() keeps oversize records out of produce requests.
      for (const c of [this.primary, this.secondary]) if (c?.sender.isConnected && c.knownLimit === undefined) await this.limitOf(c);
      await sleep(this.options.probeIntervalMs, { unref: true });
    }
  }

  /** While the secondary is active in auto mode, probes the primary and fails back once it is healthy. */
  private async failbackLoop(): Promise<void> {
    while (this.running) {
      await sleep(this.options.failbackProbeIntervalMs, { unref: true });
      if (this.force !== 'auto' || this.active === this.primary || !this.primary.sender.isConnected) continue;
      try {
        await withDeadline(this.primary.sender.probe(), this.options.publishTimeoutMs);
        this.primary.okProbes++;
        if (this.primary.okProbes >= FAILBACK_PROBES) {
          this.primary.consecutiveFailures = 0;
          this.primary.skipUntil = 0;
          this.primary.okProbes = 0;
          this.switchTo(this.primary, 'recovered');
        }
      } catch {
        this.primary.okProbes = 0;
      }
    }
  }

  /**
   * One drain step: republish the oldest spooled entries, in sends split under the topic's size
   * limit; returns how many events left the spool. Records Kafka refuses for good are parked
   * instead of blocking everything behind them; any other failure leaves the entries in place.
   */
  async drainOnce(): Promise<number> {
    const spool = this.options.spool;
    if (spool.depth === 0 || this.options.kafkaAllowed?.() === false) return 0;
    const entries: SpoolEntry[] = await spool.oldest(this.options.drainBatchMessages);
    if (entries.length === 0) return 0;
    const keep = this.options.keepOnDrain ?? (() => true);
    const records: Drained[] = [];
    for (const e of entries) e.records.forEach((record, i) => keep(record) && records.push({ id: `${e.id}-${i}`, record }));
    let lastError: unknown;
    let tried = false;
    for (const cluster of this.order()) {
      if (!this.usable(cluster)) continue;
      tried = true;
      const started = performance.now();
      try {
        const limit = await this.limitOf(cluster);
        let parked = 0;
        for (const chunk of splitByBytes(records, limit, (r) => recordBytes(r.record))) parked += await this.sendOrPark(cluster, chunk);
        cluster.ok(performance.now() - started);
        await spool.remove(entries);
        const n = entries.reduce((sum, e) => sum + e.records.length, 0);
        spoolDrained.inc(n - parked);
        return n;
      } catch (error) {
        lastError = error;
        cluster.failed(Date.now(), this.options.probeIntervalMs);
      }
    }
    if (lastError) throw lastError;
    if (!tried) this.noteDrainWait();
    return 0;
  }

  /**
   * Sends `records` to `cluster`; when Kafka refuses them, halves until the refused records are
   * alone and parks those. Returns how many were parked. Records of a refused request may have
   * been written to other partitions and are sent again (duplicates, removed by dedup).
   */
  private async sendOrPark(cluster: ClusterState, records: Drained[]): Promise<number> {
    if (records.length === 0) return 0;
    try {
      const messages = records.map((r) => ({ key: r.record.key, value: r.record.value }));
      await withDeadline(cluster.sender.send(this.options.topic, messages), Math.max(this.options.publishTimeoutMs, 10_000));
      return 0;
    } catch (error) {
      const refusal = recordRefusal(error);
      if (!refusal) throw error;
      if (records.length === 1) {
        await this.options.parked.park(records[0].id, records[0].record, refusal, (error as Error).message);
        return 1;
      }
      const half = Math.ceil(records.length / 2);
      return (await this.sendOrPark(cluster, records.slice(0, half))) + (await this.sendOrPark(cluster, records.slice(half)));
    }
  }

  /** The cluster's record batch limit, read once; Kafka's default while it cannot be read. */
  private async limitOf(cluster: ClusterState): Promise<number> {
    if (cluster.knownLimit !== undefined) return cluster.knownLimit;
    if (!cluster.sender.maxMessageBytes || Date.now() < cluster.limitRetryAt) return DEFAULT_MAX_MESSAGE_BYTES;
    try {
      cluster.knownLimit = await withDeadline(cluster.sender.maxMessageBytes(), this.options.publishTimeoutMs);
      return cluster.knownLimit;
    } catch (error) {
      cluster.limitRetryAt = Date.now() + LIMIT_RETRY_MS;
      if (!cluster.limitUnreadableLogged) {
        cluster.limitUnreadableLogged = true;
        this.options.logger.warn(
          { ...errorFields(error), cluster: cluster.name, assumed: DEFAULT_MAX_MESSAGE_BYTES },
          'cannot read the topic size limit yet',
        );
      }
      return DEFAULT_MAX_MESSAGE_BYTES;
    }
  }

  private drainWaitLoggedAt = 0;

  /** The spool holds events but no cluster may take them now: said at most every 10 s. */
  private noteDrainWait(): void {
    const now = Date.now();
    if (now - this.drainWaitLoggedAt < 10_000) return;
    this.drainWaitLoggedAt = now;
    this.options.logger.warn({ state: this.describe() }, 'spool drain waiting: no usable kafka cluster');
  }

  private async drainLoop(): Promise<void> {
    let backoff = 100;
    while (this.running) {
      try {
        const n = await this.drainOnce();
        if (n > 0) {
          backoff = 100;
          if (this.options.spool.depth === 0) this.options.logger.info('spool drained to kafka');
          continue;
        }
        await sleep(100, { unref: true });
      } catch (error) {
        this.options.logger.warn({ ...errorFields(error), depth: this.options.spool.depth, retryInMs: backoff }, 'spool drain failed');
        await sleep(backoff, { unref: true });
        backoff = Math.min(backoff * 2, 5_000);
      }
    }
  }

  /** Shutdown: drain what the spool holds while Kafka takes it, until the deadline. */
  async drainAll(deadlineMs: number): Promise<boolean> {
    const until = Date.now() + deadlineMs;
    while (this.options.spool.depth > 0 && Date.now() < until) {
      try {
        if ((await this.drainOnce()) === 0) await sleep(100, { unref: true });
      } catch {
        await sleep(500, { unref: true });
      }
    }
    return this.options.spool.depth === 0;
  }
}

export { SpoolFullError };
