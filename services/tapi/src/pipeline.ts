import os from 'node:os';
import {
  createKafka,
  ensureTopics,
  isKafkaAuthenticationError,
  kafkaConnection,
  MissingTopicsError,
  RegulationReporter,
  requireTopics,
  topicNames,
  topicSettings,
  topicSpecs,
  withDeadline,
  type Kafka,
  type TopicRole,
} from '@cdp/kafka';
import { errorFields, type Logger } from '@cdp/log';
import type { PipelineConfig } from './config';
import { KafkaCluster } from './kafka-cluster';
import { ParkedRecords } from './parked';
import { Publisher } from './publisher';
import { Spool, type SpoolRecord } from './spool';
import { SuppressionFollower } from './suppression';

/**
 * The storage side of tapi, shared by the service and the `spool` commands (cli.ts): the Kafka
 * clusters, the spool, the suppression set rebuilt from cdp.regulations, and the publisher that
 * stores into them and drains the spool. Nothing here is started: the owner starts the
 * publisher's loops and the suppression follower.
 */
export class Pipeline {
  private constructor(
    readonly kafka: Kafka,
    readonly primary: KafkaCluster,
    readonly secondary: KafkaCluster | undefined,
    readonly spool: Spool,
    readonly suppression: SuppressionFollower | undefined,
    readonly publisher: Publisher,
  ) {}

  static async open(config: PipelineConfig, logger: Logger): Promise<Pipeline> {
    const { kafka, primary, secondary } = await openClusters(config, logger);
    const spool = await Spool.open({
      dir: config.SPOOL_DIR,
      maxBytes: config.SPOOL_MAX_BYTES,
      minFreeBytes: config.SPOOL_MIN_FREE_BYTES,
      logger,
    });
    const suppression = suppressionFollower(kafka, config, logger);
    const publisher = new Publisher({
      topic: topicNames(config.CDP_TOPIC_PREFIX).ingest,
      primary,
      secondary,
      spool,
      parked: ParkedRecords.forService(config.SPOOL_DIR, logger),
      logger,
      publishTimeoutMs: config.PUBLISH_TIMEOUT_MS,
      probeIntervalMs: config.KAFKA_PROBE_INTERVAL_MS,
      failoverErrorThreshold: config.FAILOVER_ERROR_THRESHOLD,
      failoverLatencyMs: config.FAILOVER_LATENCY_MS,
      failbackProbeIntervalMs: config.FAILBACK_PROBE_INTERVAL_MS,
      drainBatchMessages: config.SPOOL_DRAIN_BATCH_MESSAGES,
      // Until the suppression set is rebuilt, events wait in the spool and are filtered when drained.
      kafkaAllowed: suppression ? () => suppression.ready : undefined,
      keepOnDrain: suppression ? (r) => !isSuppressed(suppression, r) : undefined,
    });
    return new Pipeline(kafka, primary, secondary, spool, suppression, publisher);
  }

  /**
   * Closes the spool, then the Kafka clients (which may wait for connection attempts in
   * progress); the publisher's loops must be stopped first.
   */
  async close(): Promise<void> {
    await this.spool.close();
    await this.suppression?.stop();
    await this.primary.close();
    await this.secondary?.close();
  }
}

/**
 * The primary cluster and the optional secondary, each a group-commit producer for cdp.ingest.
 * A broker down at start must not stop tapi: waits a little for the connections, then goes on
 * (events go to the spool) while the publisher keeps connecting in the background.
 */
export async function openClusters(
  config: PipelineConfig,
  logger: Logger,
): Promise<{ kafka: Kafka; primary: KafkaCluster; secondary?: KafkaCluster }> {
  const topics = topicNames(config.CDP_TOPIC_PREFIX);
  const clientId = `tapi-${os.hostname()}-${process.pid}`;
  const kafka = createKafka({ ...kafkaConnection(config), clientId, logger });
  await prepareTopics(kafka, config, logger);
  const primary = new KafkaCluster(
    kafka,
    topics.ingest,
    logger.child({ cluster: 'primary' }),
    config.PUBLISH_TIMEOUT_MS,
    config.KAFKA_PRODUCERS,
  );
  let secondary: KafkaCluster | undefined;
  if (config.KAFKA_SECONDARY_BROKERS) {
    const kafka2 = createKafka({ ...kafkaConnection(config, config.KAFKA_SECONDARY_BROKERS), clientId, logger });
    await prepareTopics(kafka2, config, logger.child({ cluster: 'secondary' }));
    secondary = new KafkaCluster(
      kafka2,
      topics.ingest,
      logger.child({ cluster: 'secondary' }),
      config.PUBLISH_TIMEOUT_MS,
      config.KAFKA_PRODUCERS,
    );
  }
  const connected = Promise.all(
    [primary, secondary].map((c) => c?.ensureConnected().catch((error) => logger.warn(errorFields(error), 'kafka not reachable at start'))),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([connected, new Promise<void>((r) => (timer = setTimeout(r, config.PUBLISH_TIMEOUT_MS * 2)))]);
  clearTimeout(timer);
  return { kafka, primary, secondary };
}

/** The record's user is suppressed in its space (GDPR): it must not reach Kafka. */
export const isSuppressed = (suppression: SuppressionFollower, r: SpoolRecord) =>
  Boolean(r.space && r.user && suppression.set.has(r.space, r.user));

/** The follower of cdp.regulations (not started), unless SUPPRESSION_ENABLED is false. */
export function suppressionFollower(kafka: Kafka, config: PipelineConfig, logger: Logger): SuppressionFollower | undefined {
  if (!config.SUPPRESSION_ENABLED) return undefined;
  const topics = topicNames(config.CDP_TOPIC_PREFIX);
  const reporter = new RegulationReporter({ kafka, topic: topics['regulation-status'], stage: 'tapi', logger });
  return new SuppressionFollower(kafka, topics.regulations, logger.child({ component: 'suppression' }), reporter);
}

/** The topics tapi uses: cdp.ingest, and cdp.regulations when it follows suppressions. */
function tapiTopicRoles(config: PipelineConfig): TopicRole[] {
  return config.SUPPRESSION_ENABLED ? ['ingest', 'regulations', 'regulation-status'] : ['ingest'];
}

/**
 * Verifies that tapi's topics exist, failing the start naming any missing one (cdp-topics
 * creates them). With KAFKA_ENSURE_TOPICS (tests, older local setups) creates them instead; only
 * tapi's own, so cdp.deduped's retention is never set from a tapi that does not know the dedup
 * window. A cluster that does not answer does not stop tapi (events wait in the spool); one that
 * refuses its SASL credentials does.
 */
async function prepareTopics(kafka: Kafka, config: PipelineConfig, logger: Logger): Promise<void> {
  const roles = tapiTopicRoles(config);
  const admin = kafka.admin();
  try {
    if (config.KAFKA_ENSURE_TOPICS) {
      await admin.connect();
      const specs = topicSpecs(topicSettings(config));
      await ensureTopics(
        admin,
        roles.map((r) => specs[r]),
      );
    } else {
      const names = topicNames(config.CDP_TOPIC_PREFIX);
      await withDeadline(
        admin.connect().then(() =>
          requireTopics(
            admin,
            roles.map((r) => names[r]),
          ),
        ),
        config.PUBLISH_TIMEOUT_MS * 2,
      );
    }
  } catch (error) {
    // Missing topics and refused credentials do not go away by waiting: the start fails.
    if (error instanceof MissingTopicsError || isKafkaAuthenticationError(error)) throw error;
    logger.warn(errorFields(error), 'cannot check topics (kafka unreachable?); continuing');
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
