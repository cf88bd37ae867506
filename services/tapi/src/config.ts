import { baseEnv, bool, checkKafkaEnv, ensureTopicsEnv, hostPortList, kafkaEnv, port, positiveInt, workspaceEnv, z } from '@cdp/config';

const KB = 1024;
const MB = 1024 * KB;

/** What the spool commands (cli.ts) read too: the Kafka clusters, spool and suppression set, without the HTTP side. */
const pipelineShape = {
  ...baseEnv,
  ...kafkaEnv,
  ...ensureTopicsEnv,
  /** Optional second cluster used when the primary degrades; mirrored back by MirrorMaker 2. */
  KAFKA_SECONDARY_BROKERS: hostPortList().optional(),
  /**
   * Optional JSON file re-read while running: `{"cluster":"auto"|"primary"|"secondary"}` lets
   * an operator force a cluster without a restart.
   */
  TAPI_RUNTIME_FILE: z.string().min(1).optional(),
  /** A publish slower than this goes to the spool instead (the client is answered from there). */
  PUBLISH_TIMEOUT_MS: positiveInt(2_000),
  /** Producers per cluster; a request takes an idle one instead of queueing behind a send. */
  KAFKA_PRODUCERS: positiveInt(1),
  /** While Kafka is marked down, one request in this interval probes it again. */
  KAFKA_PROBE_INTERVAL_MS: positiveInt(1_000),
  SPOOL_DIR: z.string().min(1).default('/var/lib/cdp-tapi/spool'),
  /** The spool refuses (503) what would take it past this size. */
  SPOOL_MAX_BYTES: positiveInt(1024 * MB),
  /** …and also when the volume's free space falls below this. */
  SPOOL_MIN_FREE_BYTES: positiveInt(64 * MB),
  SPOOL_DRAIN_BATCH_MESSAGES: positiveInt(2_000),
  MAX_EVENT_BYTES: positiveInt(32 * KB),
  MAX_BATCH_BYTES: positiveInt(500 * KB),
  MAX_BATCH_EVENTS: positiveInt(2_500),
  /** Cap on compressed request bodies; inflated bodies are capped by MAX_BATCH_BYTES. */
  MAX_COMPRESSED_BYTES: positiveInt(500 * KB),
  /**
   * Cap on what one request's events add up to once batch-level context/integrations are merged
   * into each (400 expanded_too_large past it): a small body cannot cost more than this.
   */
  TAPI_MAX_EXPANDED_BYTES: positiveInt(4 * MB),
  /** Failover: switch to the secondary after this many consecutive primary failures… */
  FAILOVER_ERROR_THRESHOLD: positiveInt(3),
  /** …or when the primary's recent p90 publish latency exceeds this. */
  FAILOVER_LATENCY_MS: positiveInt(1_000),
  /** How often the primary is probed while the secondary is active. */
  FAILBACK_PROBE_INTERVAL_MS: positiveInt(2_000),
  /** Consume cdp.regulations and drop suppressed users' events. */
  SUPPRESSION_ENABLED: bool(true),
};

export const pipelineEnv = z.object(pipelineShape).superRefine(checkKafkaEnv);
export type PipelineConfig = z.infer<typeof pipelineEnv>;

export const tapiEnv = z
  .object({
    ...pipelineShape,
    ...workspaceEnv,
    /** Public tracking API port. */
    PORT: port(8080),
    HOST: z.string().min(1).default('0.0.0.0'),
    /** Hostname (no scheme) put into the settings document's apiHost; the request Host otherwise. */
    TAPI_PUBLIC_HOST: z.string().min(1).optional(),
    /** Take the client IP from X-Forwarded-For (behind an ingress). */
    TRUST_PROXY: bool(false),
  })
  .superRefine(checkKafkaEnv);

export type TapiConfig = z.infer<typeof tapiEnv>;
