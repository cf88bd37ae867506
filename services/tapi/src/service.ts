import os from 'node:os';
import { startOpsServer, listen, type OpsServer, type RunningServer } from '@cdp/http';
import { createKafka, ensureTopics, topicNames, topicSpecs } from '@cdp/kafka';
import { errorFields, type Logger } from '@cdp/log';
import { WorkspaceStore } from '@cdp/workspace';
import type { TapiConfig } from './config';
import { KafkaCluster } from './kafka-cluster';
import { Publisher } from './publisher';
import { RateLimiter } from './rate-limit';
import { watchRuntimeConfig } from './runtime-config';
import { buildApp } from './server';
import { Spool } from './spool';
import { SuppressionFollower } from './suppression';

/**
 * Everything tapi runs, built from its config: workspace store → Kafka clusters → spool →
 * publisher → suppression follower → public and ops servers. main.ts adds signals and exit;
 * integration tests start it in-process.
 */
export class TapiService {
  private constructor(
    readonly config: TapiConfig,
    readonly logger: Logger,
    readonly store: WorkspaceStore,
    readonly primary: KafkaCluster,
    readonly secondary: KafkaCluster | undefined,
    readonly spool: Spool,
    readonly publisher: Publisher,
    readonly suppression: SuppressionFollower | undefined,
    readonly server: RunningServer,
    readonly ops: OpsServer,
    private readonly stopRuntimeWatch: () => void,
  ) {}

  static async start(config: TapiConfig, logger: Logger): Promise<TapiService> {
    const topics = topicNames(config.CDP_TOPIC_PREFIX);
    const store = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS, logger });
    const clientId = `tapi-${os.hostname()}-${process.pid}`;
    const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId, logger });
    if (config.KAFKA_ENSURE_TOPICS) await ensureAllTopics(kafka, config, logger);
    const primary = new KafkaCluster(kafka, topics.ingest, logger.child({ cluster: 'primary' }), config.PUBLISH_TIMEOUT_MS, config.KAFKA_PRODUCERS);
    let secondary: KafkaCluster | undefined;
    if (config.KAFKA_SECONDARY_BROKERS) {
      const kafka2 = createKafka({ brokers: config.KAFKA_SECONDARY_BROKERS, clientId, logger });
      if (config.KAFKA_ENSURE_TOPICS) await ensureAllTopics(kafka2, config, logger);
      secondary = new KafkaCluster(kafka2, topics.ingest, logger.child({ cluster: 'secondary' }), config.PUBLISH_TIMEOUT_MS, config.KAFKA_PRODUCERS);
    }
    // A broker down at start must not stop tapi: wait a little for the connection, then serve
    // anyway (events go to the spool) while the publisher keeps connecting in the background.
    const connected = Promise.all(
      [primary, secondary].map((c) => c?.ensureConnected().catch((error) => logger.warn(errorFields(error), 'kafka not reachable at start'))),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([connected, new Promise<void>((r) => (timer = setTimeout(r, config.PUBLISH_TIMEOUT_MS * 2)))]);
    clearTimeout(timer);
    const spool = await Spool.open({ dir: config.SPOOL_DIR, maxBytes: config.SPOOL_MAX_BYTES, minFreeBytes: config.SPOOL_MIN_FREE_BYTES, logger });
    const suppression = config.SUPPRESSION_ENABLED ? new SuppressionFollower(kafka, topics.regulations, logger.child({ component: 'suppression' })) : undefined;
    const publisher = new Publisher({
      topic: topics.ingest,
      primary,
      secondary,
      spool,
      logger,
      publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
      probeIntervalMs: config.KAFKA_PROBE_INTERVAL_MS,
      failoverErrorThreshold: config.FAILOVER_ERROR_THRESHOLD,
      failoverLatencyMs: config.FAILOVER_LATENCY_MS,
      failbackProbeIntervalMs: config.FAILBACK_PROBE_INTERVAL_MS,
      drainBatchMessages: config.SPOOL_DRAIN_BATCH_MESSAGES,
      // Until the suppression set is rebuilt, events wait in the spool and are filtered when drained.
      kafkaAllowed: suppression ? () => suppression.ready : undefined,
      keepOnDrain: suppression ? (r) => !(r.space && r.user && suppression.set.has(r.space, r.user)) : undefined,
    });
    const stopRuntimeWatch = config.TAPI_RUNTIME_FILE
      ? watchRuntimeConfig(config.TAPI_RUNTIME_FILE, config.WORKSPACE_POLL_INTERVAL_MS, logger, (mode) => publisher.setForce(mode))
      : () => undefined;
    publisher.start();
    suppression?.start();

    const rateLimiter = new RateLimiter();
    store.on('change', (next) => rateLimiter.retain(new Set(next.config.sources.map((s) => s.id))));
    const app = buildApp({
      logger,
      workspace: () => store.current(),
      publish: (records) => publisher.publish(records),
      isSuppressed: suppression ? (space, user) => suppression.set.has(space, user) : undefined,
      rateLimiter,
      limits: {
        maxEventBytes: config.MAX_EVENT_BYTES,
        maxBatchBytes: config.MAX_BATCH_BYTES,
        maxBatchEvents: config.MAX_BATCH_EVENTS,
        maxCompressedBytes: config.MAX_COMPRESSED_BYTES,
      },
      trustProxy: config.TRUST_PROXY,
      publicHost: config.TAPI_PUBLIC_HOST,
    });
    const ops = await startOpsServer({
      port: config.OPS_PORT,
      host: config.HOST,
      logger,
      checks: [
        { name: 'spool', check: async () => ({ ok: !spool.isNearFull, detail: `${spool.depth} events, ${spool.bytes} bytes` }) },
        ...(suppression ? [{ name: 'suppression', check: async () => ({ ok: suppression.ready, detail: `${suppression.set.size} users` }) }] : []),
        { name: 'kafka', check: async () => ({ ok: true, detail: publisher.describe() }) },
      ],
    });
    const server = await listen(app, config.PORT, config.HOST);
    logger.info({ port: server.port, opsPort: ops.port, topic: topics.ingest, secondary: Boolean(secondary) }, 'tapi started');
    return new TapiService(config, logger, store, primary, secondary, spool, publisher, suppression, server, ops, stopRuntimeWatch);
  }

  get url(): string {
    return this.server.url;
  }

  /**
   * Graceful stop: not ready → stop taking requests (in-flight ones finish and are stored) →
   * drain the spool to Kafka while it is reachable → close clients. What is not drained stays
   * in the spool for the next start.
   */
  async stop(drainMs = 10_000): Promise<void> {
    this.ops.setDraining();
    await this.server.close(5_000);
    this.stopRuntimeWatch();
    await this.publisher.stop();
    if (this.spool.depth > 0) {
      const drained = await this.publisher.drainAll(drainMs);
      this.logger[drained ? 'info' : 'warn']({ left: this.spool.depth }, drained ? 'spool drained before exit' : 'spool not fully drained; kept for the next start');
    }
    await this.suppression?.stop();
    await this.primary.close();
    await this.secondary?.close();
    await this.spool.close();
    this.store.close();
    await this.ops.close(1_000);
  }
}

async function ensureAllTopics(kafka: ReturnType<typeof createKafka>, config: TapiConfig, logger: Logger): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const specs = topicSpecs({ prefix: config.CDP_TOPIC_PREFIX, replicationFactor: config.KAFKA_REPLICATION_FACTOR, defaultPartitions: config.KAFKA_TOPIC_PARTITIONS });
    await ensureTopics(admin, Object.values(specs));
  } catch (error) {
    logger.warn(errorFields(error), 'cannot ensure topics (kafka unreachable?); continuing');
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
