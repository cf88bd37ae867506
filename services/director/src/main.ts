// Wiring only: config → logger → workspace, Consul, Kafka → director → ops server → shutdown hooks.
import { loadConfigOrExit } from '@cdp/config';
import { createConsulClient } from '@cdp/consul-lock';
import { startOpsServer } from '@cdp/http';
import { BatchingProducer, createKafka, requireTopics, topicNames } from '@cdp/kafka';
import { Lifecycle } from '@cdp/lifecycle';
import { createLogger, errorFields } from '@cdp/log';
import { setBuildInfo } from '@cdp/metrics';
import { WorkspaceStore } from '@cdp/workspace';
import { directorEnv } from './config';
import { KafkaUndeliveredPublisher } from './kafka-publisher';
import { Director } from './service';

async function main(): Promise<void> {
  const config = loadConfigOrExit(directorEnv, 'director');
  const logger = createLogger({ name: 'director', level: config.LOG_LEVEL });
  setBuildInfo('director', process.env.npm_package_version ?? 'dev');
  const lifecycle = new Lifecycle({ logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS });
  lifecycle.installSignalHandlers();

  const workspace = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, logger });
  const consul = createConsulClient(config.CONSUL_HTTP_ADDR);
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `director-${config.POD_NAME}`, logger });
  // cdp-topics creates the topics; the director only verifies its own, failing the start naming it.
  const undeliveredTopic = topicNames(config.CDP_TOPIC_PREFIX).undelivered;
  const admin = kafka.admin();
  await admin.connect();
  await requireTopics(admin, [undeliveredTopic]).finally(() => admin.disconnect());
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const director = new Director(config, {
    consul,
    publisher: new KafkaUndeliveredPublisher(producer, undeliveredTopic),
    workspace: () => workspace.current(),
    logger,
  });
  workspace.on('change', () => director.engine.refreshPolicies());

  const ops = await startOpsServer({
    port: config.OPS_PORT,
    logger,
    checks: [{ name: 'active-jobdb', check: () => director.isReady }],
  });
  lifecycle.onShutdown('not-ready', () => ops.setDraining());
  lifecycle.onShutdown('director', () => director.stop());
  lifecycle.onShutdown('kafka-producer', () => producer.disconnect());
  lifecycle.onShutdown('workspace', () => workspace.close());
  lifecycle.onShutdown('consul-client', () => consul.destroy());
  lifecycle.onShutdown('ops-server', () => ops.close(1_000));

  await director.start();
  logger.info({ rpc: director.url, opsPort: ops.port, pod: config.POD_NAME }, 'director started');
}

main().catch((error) => {
  // Start-up failures are fatal; the pod restarts with the reason in its log.
  createLogger({ name: 'director' }).fatal(errorFields(error), 'director failed to start');
  process.exit(1);
});
