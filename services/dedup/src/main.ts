// Wiring only: config → logger → Kafka → dedup service → ops server → shutdown hooks.
import { loadConfigOrExit } from '@cdp/config';
import { startOpsServer } from '@cdp/http';
import { createKafka } from '@cdp/kafka';
import { Lifecycle } from '@cdp/lifecycle';
import { createLogger, errorFields } from '@cdp/log';
import { setBuildInfo } from '@cdp/metrics';
import { dedupEnv } from './config';
import { DedupService } from './service';

async function main(): Promise<void> {
  const config = loadConfigOrExit(dedupEnv, 'dedup');
  const logger = createLogger({ name: 'dedup', level: config.LOG_LEVEL });
  setBuildInfo('dedup', process.env.npm_package_version ?? 'dev');
  const lifecycle = new Lifecycle({ logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS });
  lifecycle.installSignalHandlers();

  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `dedup-${process.pid}`, logger });
  const service = new DedupService(kafka, config, logger, (error) => void lifecycle.shutdown(error));
  const ops = await startOpsServer({
    port: config.OPS_PORT,
    logger,
    checks: [{ name: 'kafka-consumer-group', check: () => service.isReady }],
  });
  lifecycle.onShutdown('not-ready', () => ops.setDraining());
  lifecycle.onShutdown('dedup', () => service.stop());
  lifecycle.onShutdown('ops-server', () => ops.close(1_000));

  await service.start();
  logger.info({ input: service.topics.input, output: service.topics.output, opsPort: ops.port }, 'dedup started');
}

main().catch((error) => {
  // Start-up failures are fatal; the pod restarts with the reason in its log.
  createLogger({ name: 'dedup' }).fatal(errorFields(error), 'dedup failed to start');
  process.exit(1);
});
