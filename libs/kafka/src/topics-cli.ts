#!/usr/bin/env node
// cdp-topics: the one owner of the topic table (docs/contracts.md). `create` creates missing
// topics and brings configs in line (never the partition count); `check` changes nothing and
// exits 1 naming each missing or wrong topic. The local stack and the charts' hook Job run it.
import { createLogger } from '@cdp/log';
import { createKafka } from './client';
import { checkTopics, ensureTopics, topicSpecs, type TopicSettings, type TopicSpec } from './topics';

const USAGE = `usage: cdp-topics create|check
env: KAFKA_BROKERS (required, comma-separated), CDP_TOPIC_PREFIX (cdp.), KAFKA_TOPIC_PARTITIONS (12),
     KAFKA_REPLICATION_FACTOR (3), KAFKA_MIN_INSYNC_REPLICAS (min(2, RF)), DEDUP_WINDOW_MS (28 days)`;

class UsageError extends Error {}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The topic table's settings from the environment (the same names the services read). */
export function topicSettingsFromEnv(env: NodeJS.ProcessEnv): TopicSettings {
  return {
    prefix: env.CDP_TOPIC_PREFIX || undefined,
    defaultPartitions: positiveInt(env, 'KAFKA_TOPIC_PARTITIONS'),
    replicationFactor: positiveInt(env, 'KAFKA_REPLICATION_FACTOR'),
    minInsyncReplicas: positiveInt(env, 'KAFKA_MIN_INSYNC_REPLICAS'),
    dedupWindowMs: positiveInt(env, 'DEDUP_WINDOW_MS'),
  };
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = argv[0];
  if (command !== 'create' && command !== 'check') throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}`);
  const brokers = (env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
  if (brokers.length === 0) throw new UsageError('KAFKA_BROKERS is required');
  const specs: TopicSpec[] = Object.values(topicSpecs(topicSettingsFromEnv(env)));
  // Results on stdout, problems and logs on stderr.
  const logger = createLogger({ name: 'cdp-topics', level: env.LOG_LEVEL ?? 'warn', destination: { write: (line: string) => process.stderr.write(line) } });
  const admin = createKafka({ brokers, clientId: 'cdp-topics', logger }).admin();
  await admin.connect();
  try {
    if (command === 'create') {
      const { created, altered } = await ensureTopics(admin, specs);
      for (const name of created) out(`created ${name}`);
      for (const name of altered) out(`reconciled configs of ${name}`);
    }
    const problems = await checkTopics(admin, specs);
    for (const problem of problems) err(problem);
    if (problems.length > 0) return 1;
    out(`${specs.length} topics match (${specs.map((s) => s.name).join(', ')})`);
    return 0;
  } finally {
    await admin.disconnect();
  }
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      err(error instanceof UsageError ? `${message}\n${USAGE}` : `cdp-topics: ${message}`);
      process.exit(error instanceof UsageError ? 2 : 1);
    },
  );
}
