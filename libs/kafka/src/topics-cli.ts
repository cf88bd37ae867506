#!/usr/bin/env node
// cdp-topics: the one owner of the topic table (docs/contracts.md). `create` creates missing
// topics and brings configs in line (never the partition count); `check` changes nothing and
// exits 1 naming each missing or wrong topic. The local stack and the charts' hook Job run it.
import { loadConfig } from '@cdp/config';
import { cliLogger, err, out, runCli, UsageError } from './cli';
import { createKafka, kafkaConnection } from './client';
import { checkTopics, ensureTopics, topicsCliEnv, topicSettings, topicSpecs, type TopicSpec } from './topics';

const USAGE = `usage: cdp-topics create|check
env: KAFKA_BROKERS (required, comma-separated), CDP_TOPIC_PREFIX (cdp.), KAFKA_TOPIC_PARTITIONS (12),
     KAFKA_REPLICATION_FACTOR (3), KAFKA_MIN_INSYNC_REPLICAS (min(2, RF)), DEDUP_WINDOW_MS (28 days),
     and the services' Kafka TLS/SASL settings (KAFKA_SSL, KAFKA_SSL_CA_FILE, KAFKA_SASL_MECHANISM,
     KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)`;

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = argv[0];
  if (command !== 'create' && command !== 'check') throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}`);
  const config = loadConfig(topicsCliEnv, env);
  const specs: TopicSpec[] = Object.values(topicSpecs(topicSettings(config)));
  const admin = createKafka({
    ...kafkaConnection(config),
    clientId: 'cdp-topics',
    logger: cliLogger('cdp-topics', config.LOG_LEVEL),
  }).admin();
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

if (require.main === module) runCli('cdp-topics', USAGE, () => main(process.argv.slice(2), process.env));
