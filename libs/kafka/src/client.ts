import { Kafka, logLevel, type logCreator, type SASLOptions } from 'kafkajs';
import type { KafkaEnv } from '@cdp/config';
import { registerSecret, type Logger } from '@cdp/log';
import { counter } from '@cdp/metrics';
import { KafkaLogRouter } from './kafka-log';

// kafkajs prints a partitioner notice on every producer left on its default; ours pass
// javaCompatiblePartitioner (the same Java-compatible murmur2 placement, cheaper).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

const clientErrors = counter({
  name: 'cdp_kafka_client_errors_total',
  help: 'kafkajs error and warning lines by kind (leader-election, coordinator, connection, ..., other)',
  labelNames: ['type'] as const,
});

// One router per process, so every client's connection failures share one warning window.
const processRouter = new KafkaLogRouter({ count: (type) => clientErrors.inc({ type }) });

function pinoLogCreator(logger: Logger, router: KafkaLogRouter): logCreator {
  return () => (entry) => {
    const { level, message, fields } = router.route(entry);
    logger[level](fields, message);
  };
}

/** How to reach one cluster; `kafkaConnection()` builds it from the Kafka config fragment. */
export interface KafkaConnection {
  brokers: string[];
  /** TLS; `ca` (PEM) replaces the system's CAs. */
  ssl?: { ca?: string };
  sasl?: { mechanism: NonNullable<KafkaEnv['KAFKA_SASL_MECHANISM']>; username: string; password: string };
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/**
 * The connection the Kafka env describes (libs/config `kafkaEnv`, checked by `checkKafkaEnv`).
 * `brokers` names another cluster reached with the same TLS and SASL (tapi's secondary).
 */
export function kafkaConnection(config: KafkaEnv, brokers: string[] = config.KAFKA_BROKERS): KafkaConnection {
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = config;
  if (mechanism && (username === undefined || password === undefined)) {
    // The schema's check makes this unreachable from a loaded config.
    throw new Error('KAFKA_SASL_MECHANISM is set without KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD');
  }
  return {
    brokers,
    ssl: config.KAFKA_SSL ? { ca: config.KAFKA_SSL_CA_FILE?.contents } : undefined,
    sasl: mechanism ? { mechanism, username: username!, password: password! } : undefined,
    connectionTimeoutMs: config.KAFKA_CONNECTION_TIMEOUT_MS,
    requestTimeoutMs: config.KAFKA_REQUEST_TIMEOUT_MS,
  };
}

// kafkajs types SASL options per mechanism; the switch narrows ours to each.
function saslOptions({ mechanism, username, password }: NonNullable<KafkaConnection['sasl']>): SASLOptions {
  switch (mechanism) {
    case 'plain':
      return { mechanism, username, password };
    case 'scram-sha-256':
      return { mechanism, username, password };
    case 'scram-sha-512':
      return { mechanism, username, password };
  }
}

export interface KafkaClientOptions extends KafkaConnection {
  clientId: string;
  logger: Logger;
}

export function createKafka(options: KafkaClientOptions): Kafka {
  const { ssl, sasl } = options;
  // kafkajs never logs it; registered so that no log line could carry it anyway.
  registerSecret(sasl?.password);
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: logLevel.INFO,
    logCreator: pinoLogCreator(options.logger.child({ component: 'kafkajs' }), processRouter),
    connectionTimeout: options.connectionTimeoutMs ?? 3_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    ssl: ssl ? (ssl.ca ? { ca: [ssl.ca] } : true) : undefined,
    sasl: sasl ? saslOptions(sasl) : undefined,
  });
}

/** The brokers refused our SASL credentials: not an outage to wait out, the start must fail. */
export function isKafkaAuthenticationError(error: unknown): boolean {
  return error instanceof Error && error.name === 'KafkaJSSASLAuthenticationError';
}

/**
 * How long the broker holds a fetch that finds nothing new (maxWaitTimeInMs; kafkajs's default
 * is 5 s). A consumer's disconnect waits for its fetch in flight, so an idle consumer's stop
 * took up to 5 s; now up to this. A fetch still returns as soon as there is data (minBytes 1),
 * so a busy consumer reads as before; an idle one asks twice a second instead of every 5 s.
 */
export const FETCH_MAX_WAIT_MS = 500;

export { Kafka } from 'kafkajs';
