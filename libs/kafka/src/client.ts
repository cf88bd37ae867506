import { Kafka, logLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import type { Logger } from '@cdp/log';

// kafkajs prints a partitioner notice on every producer left on its default; ours pass
// javaCompatiblePartitioner (the same Java-compatible murmur2 placement, cheaper).
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

function pinoLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      const fields = { kafka: extra };
      if (level === logLevel.ERROR) logger.error(fields, message);
      else if (level === logLevel.WARN) logger.warn(fields, message);
      else if (level === logLevel.INFO) logger.debug(fields, message);
      else logger.trace(fields, message);
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
    logCreator: pinoLogCreator(options.logger.child({ component: 'kafkajs' })),
    connectionTimeout: 3_000,
    requestTimeout: 30_000,
    ...options.config,
  });
}

export { Kafka } from 'kafkajs';
