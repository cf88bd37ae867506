import {
  BatchingProducer,
  CommitAfterWorkConsumer,
  createKafka,
  kafkaConnection,
  requireTopics,
  topicNames,
  workerSettings,
} from '@cdp/kafka';
import { startAdminServer, type RunningServer } from '@cdp/http';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { WorkspaceStore } from '@cdp/workspace';
import { identityEnv, type IdentityConfig } from './config';
import { GraphStore } from './graph';
import { profileApiRoutes } from './profile-api';
import { RecentEvents } from './recent';
import { Resolver } from './resolver';
import { decodeDeduped, IdentityStage } from './service';
import { checkTables, dynamoClient, tableNames } from './tables';

/** identity from its config: workspace file, DynamoDB graph, the cdp.identified producer, the worker on cdp.deduped. */
export async function build(config: IdentityConfig, { logger, fatal }: ServiceDeps): Promise<BuiltService> {
  const workspace = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS, logger });
  const dynamo = dynamoClient(config);
  const tables = tableNames(config.IDENTITY_TABLE_PREFIX);
  // identity-tables creates the tables; the service only verifies them, failing the start naming each problem.
  const problems = await checkTables(dynamo, tables);
  if (problems.length > 0) throw new Error(`DynamoDB tables not ready (create them with identity-tables create): ${problems.join('; ')}`);
  const topics = topicNames(config.CDP_TOPIC_PREFIX);
  const kafka = createKafka({ ...kafkaConnection(config), clientId: `identity-${process.pid}`, logger });
  const admin = kafka.admin();
  await admin.connect();
  await requireTopics(admin, [topics.deduped, topics.identified, topics.dlq]).finally(() => admin.disconnect());
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const resolver = new Resolver(new GraphStore(dynamo, tables), {
    cacheTtlMs: config.IDENTITY_CACHE_TTL_MS,
    cacheEntries: config.IDENTITY_CACHE_ENTRIES,
  });
  const recent = new RecentEvents(dynamo, tables, {
    size: config.IDENTITY_RECENT_EVENTS_PER_PROFILE,
    ttlMs: config.IDENTITY_RECENT_EVENTS_DAYS * 86_400_000,
  });
  const stage = new IdentityStage({ resolver, producer, recent, outputTopic: topics.identified, workspace: () => workspace.current() });
  const worker = new CommitAfterWorkConsumer({
    kafka,
    groupId: config.IDENTITY_GROUP_ID,
    topics: [topics.deduped],
    dlqTopic: topics.dlq,
    stage: 'identity',
    logger,
    decode: decodeDeduped,
    handle: (items, ctx) => stage.handle(items, ctx),
    partitionsConsumedConcurrently: config.IDENTITY_PARTITIONS_CONCURRENTLY,
    onFatal: fatal,
    ...workerSettings(config),
  });
  const graph = new GraphStore(dynamo, tables);
  let adminServer: RunningServer | undefined;
  return {
    start: async () => {
      adminServer = await startAdminServer({
        service: 'identity',
        port: config.ADMIN_PORT,
        token: config.ADMIN_TOKEN,
        logger,
        routes: profileApiRoutes({
          store: graph,
          recent,
          workspace: () => workspace.current(),
          ratePerSecond: config.IDENTITY_PROFILE_API_RATE,
        }),
      });
      await worker.start();
      return { input: topics.deduped, output: topics.identified, tables: Object.values(tables).join(','), adminPort: adminServer.port };
    },
    readiness: [{ name: 'kafka-worker', check: async () => worker.readiness() }],
    shutdown: {
      stopInputs: { 'kafka-worker': () => worker.stop(), 'admin-server': async () => adminServer?.close() },
      flushProducers: { 'kafka-producer': () => producer.disconnect() },
      closeClients: { workspace: () => workspace.close(), dynamodb: async () => dynamo.destroy() },
    },
  };
}

export const identity: ServiceDefinition<IdentityConfig> = { name: 'identity', env: identityEnv, build };
