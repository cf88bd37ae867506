import { createKafka, kafkaConnection } from '@cdp/kafka';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { dedupEnv, type DedupConfig } from './config';
import { DedupService } from './service';

/** dedup from its config: one Kafka client and the consumer of cdp.ingest with its partition workers. */
export async function build(config: DedupConfig, { logger, fatal }: ServiceDeps): Promise<BuiltService> {
  const kafka = createKafka({ ...kafkaConnection(config), clientId: `dedup-${process.pid}`, logger });
  const service = new DedupService(kafka, config, logger, fatal);
  return {
    // Verifies the topics (missing, not co-partitioned, too short a retention: the start fails), then joins the group.
    start: async () => {
      await service.start();
      return { input: service.topics.input, output: service.topics.output };
    },
    readiness: [{ name: 'kafka-consumer-group', check: () => service.isReady }],
    shutdown: {
      stopInputs: { 'kafka-consumer': () => service.stopConsuming() },
      closeClients: { 'partition-workers': () => service.closeWorkers() },
    },
  };
}

export const dedup: ServiceDefinition<DedupConfig> = { name: 'dedup', env: dedupEnv, build };
