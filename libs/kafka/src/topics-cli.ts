#!/usr/bin/env node
// cdp-topics: the one owner of the topic table (docs/contracts.md). `create` creates missing
// topics and brings configs in line (never the partition count); `check` changes nothing and
// exits 1 naming each missing or wrong topic. The local stack and the charts' hook Job run it.
import { checkKafkaEnv, ConfigError, dedupWindowEnv, kafkaEnv, loadConfig, logLevel, topicTableEnv, z } from '@cdp/config';
import { createLogger } from '@cdp/log';
import { createKafka, kafkaConnection } from './client';
import { checkTopics, ensureTopics, topicSettings, topicSpecs, type TopicSpec } from './topics';

const USAGE = `usage: cdp-topics create|check
env: KAFKA_BROKERS (required, comma-separated), CDP_TOPIC_PREFIX (cdp.), KAFKA_TOPIC_PARTITIONS (12),
     KAFKA_REPLICATION_FACTOR (3), KAFKA_MIN_INSYNC_REPLICAS (min(2, RF)), DEDUP_WINDOW_MS (28 days),
     and the services' Kafka TLS/SASL settings (KAFKA_SSL, KAFKA_SSL_CA_FILE, KAFKA_SASL_MECHANISM,
     KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)`;

/** The same names, types and checks the services read. */
const topicsCliEnv = z
  .object({ ...kafkaEnv, ...topicTableEnv, ...dedupWindowEnv, LOG_LEVEL: logLevel().default('warn') })
  .superRefine(checkKafkaEnv);

class UsageError extends Error {}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = argv[0];
  if (command !== 'create' && command !== 'check') throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}`);
  const config = loadConfig(topicsCliEnv, env);
  const specs: TopicSpec[] = Object.values(topicSpecs(topicSettings(config)));
  // Results on stdout, problems and logs on stderr.
  const logger = createLogger({ name: 'cdp-topics', level: config.LOG_LEVEL, destination: { write: (line: string) => process.stderr.write(line) } });
  const admin = createKafka({ ...kafkaConnection(config), clientId: 'cdp-topics', logger }).admin();
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
      const usage = error instanceof UsageError || error instanceof ConfigError;
      err(usage ? `${message}\n${USAGE}` : `cdp-topics: ${message}`);
      process.exit(usage ? 2 : 1);
    },
  );
}
