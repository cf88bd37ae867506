// Operator commands on a spool directory (README "Commands"):
//   node dist/cli.js spool drain --dir <path> [--timeout-ms <ms>]
//   node dist/cli.js spool parked list --dir <path> [--values]
//   node dist/cli.js spool parked resend --dir <path> (--id <id>... | --all) [--timeout-ms <ms>]
//   node dist/cli.js spool parked discard --dir <path> (--id <id>... | --all)
// Kafka, topics and suppression come from the same env as the service (KAFKA_BROKERS,
// CDP_TOPIC_PREFIX, KAFKA_SECONDARY_BROKERS, SUPPRESSION_ENABLED...). Logs go to stderr, results
// (JSON lines) to stdout.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '@cdp/config';
import { recordRefusal, withDeadline } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { createLogger, errorFields, type Logger } from '@cdp/log';
import { pipelineEnv, type PipelineConfig } from './config';
import { ParkedRecords, type ParkedRecord } from './parked';
import { isSuppressed, openClusters, Pipeline, suppressionFollower } from './pipeline';

const USAGE = `usage:
  cli.js spool drain --dir <path> [--timeout-ms <ms>]
  cli.js spool parked list --dir <path> [--values]
  cli.js spool parked resend --dir <path> (--id <id>... | --all) [--timeout-ms <ms>]
  cli.js spool parked discard --dir <path> (--id <id>... | --all)`;

const DEFAULT_TIMEOUT_MS = 600_000;

/**
 * Republishes everything a spool directory holds (e.g. a volume left by a scale-in) to Kafka,
 * the way a tapi process does at start: in arrival order, suppressed users' events dropped once
 * the suppression set is rebuilt, records Kafka refuses parked. Exit 0 when the spool is empty,
 * 1 when time ran out first.
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
    await closeQuickly(() => pipeline.close(), logger);
  }
}

type Outcome = 'sent' | 'suppressed' | 'refused' | 'failed' | 'discarded' | 'missing';

/**
 * Sends parked records to Kafka again, one at a time (primary, then the secondary): each sent
 * one, or one whose user was suppressed since, is removed; one refused again stays parked.
 */
export async function resendParked(
  config: PipelineConfig,
  logger: Logger,
  ids: string[] | 'all',
  timeoutMs: number,
): Promise<{ id: string; key?: string; outcome: Outcome }[]> {
  const parked = new ParkedRecords(config.SPOOL_DIR, logger);
  const targets: (ParkedRecord | string)[] = ids === 'all' ? parked.list() : ids.map((id) => parked.get(id) ?? id);
  if (!targets.some((t) => typeof t !== 'string')) return targets.map((id) => ({ id: String(id), outcome: 'missing' }));
  const { kafka, primary, secondary } = await openClusters(config, logger);
  const suppression = suppressionFollower(kafka, config, logger);
  const topic = primary.topic;
  try {
    const until = Date.now() + timeoutMs;
    suppression?.start();
    while (suppression && !suppression.ready && Date.now() < until) await sleep(100);
    const out: { id: string; key?: string; outcome: Outcome }[] = [];
    for (const t of targets) {
      if (typeof t === 'string') {
        out.push({ id: t, outcome: 'missing' });
        continue;
      }
      const result = { id: t.id, key: t.record.key };
      if (suppression && !suppression.ready) {
        out.push({ ...result, outcome: 'failed' }); // cannot tell whether the user was suppressed since
        continue;
      }
      if (suppression && isSuppressed(suppression, t.record)) {
        await parked.remove(t.id);
        out.push({ ...result, outcome: 'suppressed' });
        continue;
      }
      let outcome: Outcome = 'failed';
      for (const cluster of [primary, secondary]) {
        if (!cluster) continue;
        try {
          await withDeadline(
            cluster.send(topic, [{ key: t.record.key, value: t.record.value }]),
            Math.max(config.PUBLISH_TIMEOUT_MS, 10_000),
          );
          outcome = 'sent';
          break;
        } catch (error) {
          if (recordRefusal(error)) outcome = 'refused';
          logger.warn(
            { ...errorFields(error), id: t.id, cluster: cluster === primary ? 'primary' : 'secondary' },
            'parked record not re-sent',
          );
        }
      }
      if (outcome === 'sent') await parked.remove(t.id);
      out.push({ ...result, outcome });
    }
    return out;
  } finally {
    await closeQuickly(async () => {
      await suppression?.stop();
      await primary.close();
      await secondary?.close();
    }, logger);
  }
}

/** Kafka clients still retrying a connection are not waited for long at exit. */
async function closeQuickly(close: () => Promise<void>, logger: Logger): Promise<void> {
  await withDeadline(close(), 2_000).catch(() => logger.debug('kafka clients still closing at exit'));
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      'timeout-ms': { type: 'string', default: String(DEFAULT_TIMEOUT_MS) },
      id: { type: 'string', multiple: true },
      all: { type: 'boolean', default: false },
      values: { type: 'boolean', default: false },
    },
  });
  const command = positionals.join(' ');
  const timeoutMs = Number(values['timeout-ms']);
  const ids = values.all ? ('all' as const) : values.id;
  const needsIds = command === 'spool parked resend' || command === 'spool parked discard';
  const known = ['spool drain', 'spool parked list', 'spool parked resend', 'spool parked discard'].includes(command);
  if (!known || !values.dir || !(timeoutMs > 0) || (needsIds && !ids?.length)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const dir = values.dir;
  const logger = createLogger({
    name: 'tapi-cli',
    level: process.env.LOG_LEVEL ?? 'info',
    destination: { write: (line: string) => process.stderr.write(line) },
  });
  const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
  const parked = new ParkedRecords(dir, logger);

  if (command === 'spool parked list') {
    for (const p of parked.list()) {
      const { record, ...rest } = p;
      print({
        ...rest,
        key: record.key,
        space: record.space,
        user: record.user,
        bytes: Buffer.byteLength(record.value),
        ...(values.values ? { value: record.value } : {}),
      });
    }
    return 0;
  }
  if (command === 'spool parked discard') {
    const targets = ids === 'all' ? parked.list().map((p) => p.id) : ids!;
    let missing = 0;
    for (const id of targets) {
      const p = parked.get(id);
      if (!p) {
        missing++;
        print({ id, outcome: 'missing' });
        continue;
      }
      await parked.remove(id);
      logger.warn({ id, key: p.record.key, reason: p.reason }, 'parked record discarded');
      print({ id, key: p.record.key, outcome: 'discarded' });
    }
    return missing === 0 ? 0 : 1;
  }

  // Kafka is needed from here on.
  const config = loadConfigOrExit(pipelineEnv, 'tapi-cli', { ...process.env, SPOOL_DIR: dir });
  if (command === 'spool parked resend') {
    const results = await resendParked(config, logger, ids!, timeoutMs);
    for (const r of results) print(r);
    return results.every((r) => r.outcome === 'sent' || r.outcome === 'suppressed') ? 0 : 1;
  }
  const result = await drainSpool(config, logger, timeoutMs);
  print({ dir: config.SPOOL_DIR, ...result });
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
    createLogger({ name: 'tapi-cli', destination: { write: (line: string) => process.stderr.write(line) } }).fatal(
      errorFields(error),
      'spool command failed',
    );
    exit(1);
  });
}
