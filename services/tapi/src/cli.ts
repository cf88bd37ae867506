// Operator commands on a spool directory (README "Commands"):
//   node dist/cli.js spool drain --dir <path> [--timeout-ms <ms>]
// Kafka, topics and suppression come from the same env as the service (KAFKA_BROKERS,
// CDP_TOPIC_PREFIX, KAFKA_SECONDARY_BROKERS, SUPPRESSION_ENABLED...). Logs go to stderr, the
// result (one JSON line) to stdout.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '@cdp/config';
import { withDeadline } from '@cdp/kafka';
import { createLogger, errorFields, type Logger } from '@cdp/log';
import { pipelineEnv, type PipelineConfig } from './config';
import { Pipeline } from './pipeline';

const USAGE = 'usage: cli.js spool drain --dir <path> [--timeout-ms <ms>]';

/**
 * Republishes everything a spool directory holds (e.g. a volume left by a scale-in) to Kafka,
 * the way a tapi process does at start: in arrival order, suppressed users' events dropped once
 * the suppression set is rebuilt. Exit 0 when the spool is empty, 1 when time ran out first.
 */
export async function drainSpool(config: PipelineConfig, logger: Logger, timeoutMs: number): Promise<{ drained: number; left: number }> {
  // A volume where tapi never spooled has no spool: nothing to do (and nothing to create).
  if (!fs.existsSync(path.join(config.SPOOL_DIR, 'CURRENT'))) return { drained: 0, left: 0 };
  const pipeline = await Pipeline.open(config, logger);
  const { spool, publisher, suppression } = pipeline;
  const before = spool.depth;
  try {
    suppression?.start();
    const until = Date.now() + timeoutMs;
    while (spool.depth > 0 && Date.now() < until) {
      // Connecting to an unreachable broker retries for seconds: wait no longer than the timeout.
      await withDeadline(publisher.connect(), Math.max(1, until - Date.now())).catch(() => undefined);
      await publisher.drainAll(Math.min(5_000, until - Date.now()));
    }
    return { drained: before - spool.depth, left: spool.depth };
  } finally {
    // The spool closes first; Kafka clients still retrying a connection are not waited for long.
    await withDeadline(pipeline.close(), 2_000).catch(() => logger.debug('kafka clients still closing at exit'));
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { dir: { type: 'string' }, 'timeout-ms': { type: 'string', default: '600000' } },
  });
  const timeoutMs = Number(values['timeout-ms']);
  if (positionals.join(' ') !== 'spool drain' || !values.dir || !(timeoutMs > 0)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const config = loadConfigOrExit(pipelineEnv, 'tapi-cli', { ...process.env, SPOOL_DIR: values.dir });
  const logger = createLogger({ name: 'tapi-cli', level: config.LOG_LEVEL, destination: { write: (line: string) => process.stderr.write(line) } });
  const result = await drainSpool(config, logger, timeoutMs);
  process.stdout.write(`${JSON.stringify({ dir: config.SPOOL_DIR, ...result })}\n`);
  if (result.left > 0) logger.warn(result, 'spool not drained before the timeout (kafka unreachable?); run again');
  return result.left === 0 ? 0 : 1;
}

if (require.main === module) {
  // Exits explicitly: kafkajs's reconnect timers would keep a command against an unreachable
  // broker alive, and the publisher's waits use unref'd timers that must not end it early.
  const keepAlive = setInterval(() => undefined, 60_000);
  const exit = (code: number) => {
    clearInterval(keepAlive);
    process.stdout.write('', () => process.exit(code));
  };
  main(process.argv.slice(2)).then(exit, (error: unknown) => {
    createLogger({ name: 'tapi-cli', destination: { write: (line: string) => process.stderr.write(line) } }).fatal(errorFields(error), 'spool command failed');
    exit(1);
  });
}
