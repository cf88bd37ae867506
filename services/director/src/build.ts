import { actionDestinationIssues } from '@cdp/actions';
import { mysqlConnectionUrl } from '@cdp/config';
import { createConsulClient } from '@cdp/consul';
import { BatchingProducer, createKafka, kafkaConnection, RegulationReporter, requireTopics, topicNames } from '@cdp/kafka';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { WorkspaceStore } from '@cdp/workspace';
import { directorEnv, type DirectorConfig } from './config';
import { KafkaUndeliveredPublisher } from './kafka-publisher';
import { Director } from './service';

/** The director from its config: workspace file, Consul client, the cdp.undelivered producer, the Director. */
export async function build(config: DirectorConfig, { logger }: ServiceDeps): Promise<BuiltService> {
  // Action destinations are checked against their definitions at load: a wrong mapping or a
  // missing setting fails the start (and a reload is rejected), naming the field.
  const workspace = WorkspaceStore.open({
    file: config.CDP_WORKSPACE_FILE,
    pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS,
    logger,
    check: actionDestinationIssues,
  });
  const consul = createConsulClient(config.CONSUL_HTTP_ADDR, { token: config.CONSUL_HTTP_TOKEN });
  const kafka = createKafka({ ...kafkaConnection(config), clientId: `director-${config.POD_NAME}`, logger });
  // cdp-topics creates the topics; the director only verifies its own, failing the start naming it.
  const topics = topicNames(config.CDP_TOPIC_PREFIX);
  const undeliveredTopic = topics.undelivered;
  const admin = kafka.admin();
  await admin.connect();
  await requireTopics(admin, [undeliveredTopic, topics['regulation-status']]).finally(() => admin.disconnect());
  // The destinations' part of GDPR deletions (stage destination.<id>; see deletions.ts).
  const regulationStatus = new RegulationReporter({ kafka, topic: topics['regulation-status'], stage: 'destinations', logger });
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  // Every MySQL connection of the director opens from MYSQL_URL: give it the TLS settings.
  const director = new Director(
    { ...config, MYSQL_URL: mysqlConnectionUrl(config) },
    {
      consul,
      publisher: new KafkaUndeliveredPublisher(producer, undeliveredTopic),
      workspace: () => workspace.current(),
      logger,
      regulationStatus,
    },
  );
  workspace.on('change', () => director.engine.refreshPolicies());
  return {
    start: async () => {
      await director.start();
      return { rpc: director.url, pod: config.POD_NAME };
    },
    readiness: [{ name: 'active-jobdb', check: () => director.isReady }],
    shutdown: {
      stopInputs: { rpc: () => director.closeRpc() },
      // In-flight deliveries finish (bounded) and are persisted, locks released, stats flushed.
      drain: { director: () => director.stop() },
      flushProducers: { 'kafka-producer': () => producer.disconnect(), 'regulation-status': () => regulationStatus.close() },
      closeClients: { workspace: () => workspace.close(), 'consul-client': () => consul.close() },
    },
  };
}

export const director: ServiceDefinition<DirectorConfig> = { name: 'director', env: directorEnv, build };
