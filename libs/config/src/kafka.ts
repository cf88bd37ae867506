import { z } from 'zod';
import { bool, hostPortList, pemFile, positiveInt, secret } from './fields';

const DAY_MS = 86_400_000;

export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/**
 * How a client reaches a Kafka cluster: brokers, timeouts, TLS and SASL. Spread into a
 * service's schema and check it with `checkKafkaEnv`; libs/kafka `kafkaConnection()` turns the
 * parsed values into the client's settings.
 */
export const kafkaEnv = {
  KAFKA_BROKERS: hostPortList(),
  CDP_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'may contain only letters, digits, ".", "_" and "-"')
    .default('cdp.'),
  /** Per broker connection: TCP connect and TLS handshake (SASL has kafkajs' own 10 s). */
  KAFKA_CONNECTION_TIMEOUT_MS: positiveInt(3_000),
  /** One request to a broker (produce, fetch, metadata, admin calls). */
  KAFKA_REQUEST_TIMEOUT_MS: positiveInt(30_000),
  /** TLS to the brokers (MSK, Confluent Cloud). The system's CAs unless KAFKA_SSL_CA_FILE is set. */
  KAFKA_SSL: bool(false),
  /** PEM bundle of the CAs that signed the brokers' certificates (a private CA); needs KAFKA_SSL=true. */
  KAFKA_SSL_CA_FILE: pemFile().optional(),
  /** SASL over the connection (over TLS in production): plain, scram-sha-256 or scram-sha-512. */
  KAFKA_SASL_MECHANISM: z.enum(KAFKA_SASL_MECHANISMS, { message: `must be one of ${KAFKA_SASL_MECHANISMS.join(', ')}` }).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  /** From a Secret; never logged. */
  KAFKA_SASL_PASSWORD: secret().optional(),
};

export type KafkaEnv = z.output<z.ZodObject<typeof kafkaEnv>>;

type KafkaSecurityEnv = Pick<
  KafkaEnv,
  'KAFKA_SSL' | 'KAFKA_SSL_CA_FILE' | 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD'
>;

/** SASL needs its mechanism, user and password together; a CA file only means something with TLS. */
export function checkKafkaEnv(env: KafkaSecurityEnv, ctx: z.RefinementCtx): void {
  const issue = (variable: keyof KafkaSecurityEnv, message: string) => ctx.addIssue({ code: 'custom', path: [variable], message });
  if (env.KAFKA_SASL_MECHANISM) {
    const needs = `with KAFKA_SASL_MECHANISM=${env.KAFKA_SASL_MECHANISM}`;
    if (env.KAFKA_SASL_USERNAME === undefined) issue('KAFKA_SASL_USERNAME', needs);
    if (env.KAFKA_SASL_PASSWORD === undefined) issue('KAFKA_SASL_PASSWORD', needs);
  } else if (env.KAFKA_SASL_USERNAME !== undefined || env.KAFKA_SASL_PASSWORD !== undefined) {
    issue('KAFKA_SASL_MECHANISM', 'when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set');
  }
  if (env.KAFKA_SSL_CA_FILE !== undefined && !env.KAFKA_SSL) issue('KAFKA_SSL_CA_FILE', 'is set but KAFKA_SSL is not true');
}

/** A consumer group member's timeouts (services with a consumer group). */
export const kafkaConsumerEnv = {
  /** The broker removes a member it has not heard from for this long. */
  KAFKA_SESSION_TIMEOUT_MS: positiveInt(30_000),
  KAFKA_HEARTBEAT_INTERVAL_MS: positiveInt(3_000),
};

/** The shared Kafka worker (libs/kafka `CommitAfterWorkConsumer`): group timeouts and its retry rule. */
export const kafkaWorkerEnv = {
  ...kafkaConsumerEnv,
  /** Attempts of a message's handler before it goes to cdp.dlq; errors marked retriable do not count. */
  KAFKA_WORKER_MAX_ATTEMPTS: positiveInt(5),
  /** Backoff between attempts, doubling from the first wait to the longest. */
  KAFKA_WORKER_RETRY_INITIAL_MS: positiveInt(200),
  KAFKA_WORKER_RETRY_MAX_MS: positiveInt(10_000),
};

export type KafkaWorkerEnv = z.output<z.ZodObject<typeof kafkaWorkerEnv>>;

/** The topic table's settings (docs/contracts.md) that `cdp-topics` and KAFKA_ENSURE_TOPICS apply. */
export const topicTableEnv = {
  KAFKA_TOPIC_PARTITIONS: positiveInt(12),
  KAFKA_REPLICATION_FACTOR: positiveInt(3),
  /** min.insync.replicas of every topic; min(2, KAFKA_REPLICATION_FACTOR) when unset. */
  KAFKA_MIN_INSYNC_REPLICAS: positiveInt().optional(),
};

export type TopicTableEnv = z.output<z.ZodObject<typeof topicTableEnv>>;

/**
 * The dedup window: a copy is a duplicate when it arrives less than this after the first (on
 * receivedAt). cdp.deduped is kept at least this long, so `cdp-topics` reads it too.
 */
export const dedupWindowEnv = {
  DEDUP_WINDOW_MS: positiveInt(28 * DAY_MS),
};

/** A service that may create its topics at start (local stack and tests; production runs `cdp-topics`). */
export const ensureTopicsEnv = {
  ...topicTableEnv,
  KAFKA_ENSURE_TOPICS: bool(false),
};
