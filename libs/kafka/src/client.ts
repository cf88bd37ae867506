import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import type { Logger } from '@cdp/log';
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

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Overrides for kafkajs (ssl, sasl, timeouts). */
  config?: Partial<KafkaConfig>;
}

export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: logLevel.INFO,
    logCreator: pinoLogCreator(options.logger.child({ component: 'kafkajs' }), processRouter),
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    ...options.config,
  });
}

export { Kafka } from 'kafkajs';
