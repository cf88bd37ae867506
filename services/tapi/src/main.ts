// Wiring only: config → logger → lifecycle → TapiService (workspace, kafka, spool, servers).
import { loadConfigOrExit } from '@cdp/config';
import { Lifecycle } from '@cdp/lifecycle';
import { createLogger, errorFields } from '@cdp/log';
import { setBuildInfo } from '@cdp/metrics';
import { tapiEnv } from './config';
import { TapiService } from './service';

async function main(): Promise<void> {
  const config = loadConfigOrExit(tapiEnv, 'tapi');
  const logger = createLogger({ name: 'tapi', level: config.LOG_LEVEL });
  setBuildInfo('tapi', process.env.npm_package_version ?? 'dev');
  const lifecycle = new Lifecycle({ logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS });
  lifecycle.installSignalHandlers();
  const service = await TapiService.start(config, logger);
  // Drain the spool within the shutdown deadline, keeping time for closing clients.
  lifecycle.onShutdown('tapi', () => service.stop(Math.max(1_000, config.SHUTDOWN_TIMEOUT_MS - 8_000)));
}

main().catch((error) => {
  createLogger({ name: 'tapi' }).fatal(errorFields(error), 'tapi failed to start');
  process.exit(1);
});
