import { regulationStatusSchema, type RegulationStatus } from '@cdp/events';
import {
  BatchingProducer,
  CommitAfterWorkConsumer,
  CompactedTopicMap,
  createKafka,
  RegulationReporter,
  kafkaConnection,
  requireTopics,
  topicNames,
  workerSettings,
} from '@cdp/kafka';
import { startAdminServer, type RunningServer } from '@cdp/http';
import { sleep } from '@cdp/lifecycle';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { WorkspaceStore } from '@cdp/workspace';
import { identityEnv, type IdentityConfig } from './config';
import { deleteUserData, IdentityRegulations } from './gdpr';
import { GraphStore } from './graph';
import { profileApiRoutes } from './profile-api';
import { RecentEvents } from './recent';
import { regulationsApiRoutes, RegulationStore } from './regulations';
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
  await requireTopics(admin, [topics.deduped, topics.identified, topics.dlq, topics.regulations, topics['regulation-status']]).finally(() =>
    admin.disconnect(),
  );
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
  const graph = new GraphStore(dynamo, tables);
  const reporter = new RegulationReporter({ kafka, topic: topics['regulation-status'], stage: 'identity', logger });
  await reporter.connect();
  const regulations = new IdentityRegulations({
    kafka,
    topic: topics.regulations,
    logger: logger.child({ component: 'regulations' }),
    groupPrefix: `${config.IDENTITY_GROUP_ID}-regulations`,
    reporter,
    deleteUser: (spaceId, userId, before) => deleteUserData({ client: dynamo, tables, store: graph, recent }, spaceId, userId, before),
  });
  const statuses = new CompactedTopicMap<RegulationStatus>({
    kafka,
    topic: topics['regulation-status'],
    logger: logger.child({ component: 'regulation-status' }),
    groupPrefix: `${config.IDENTITY_GROUP_ID}-regulation-status`,
    decode: (_key, value) => regulationStatusSchema.parse(JSON.parse(value.toString('utf8'))),
  });
  const stage = new IdentityStage({
    resolver,
    producer,
    recent,
    outputTopic: topics.identified,
    workspace: () => workspace.current(),
    suppressed: (message, spaceId) => regulations.suppressed(message, spaceId),
  });
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
  let adminServer: RunningServer | undefined;
  return {
    start: async () => {
      adminServer = await startAdminServer({
        service: 'identity',
        port: config.ADMIN_PORT,
        token: config.ADMIN_TOKEN,
        logger,
        routes: (app) => {
          profileApiRoutes({ store: graph, recent, workspace: () => workspace.current(), ratePerSecond: config.IDENTITY_PROFILE_API_RATE })(
            app,
          );
          regulationsApiRoutes({
            store: new RegulationStore(dynamo, tables),
            producer,
            topic: topics.regulations,
            workspace: () => workspace.current(),
            stages: config.IDENTITY_REGULATION_STAGES,
            status: (id, stage) => statuses.get(`${id}:${stage}`),
          })(app);
        },
      });
      // No event is resolved before the regulations were read whole: a suppressed user's events never pass.
      regulations.start();
      statuses.start();
      for (let waited = 0; !regulations.readiness().ok; waited += 100) {
        if (waited > 120_000) throw new Error(`${topics.regulations} not read up to its end within 120 s`);
        await sleep(100);
      }
      await worker.start();
      return { input: topics.deduped, output: topics.identified, tables: Object.values(tables).join(','), adminPort: adminServer.port };
    },
    readiness: [
      { name: 'kafka-worker', check: async () => worker.readiness() },
      { name: 'regulations', check: async () => regulations.readiness() },
      { name: 'regulation-status', check: async () => statuses.follower.readiness() },
    ],
    shutdown: {
      stopInputs: { 'kafka-worker': () => worker.stop(), 'admin-server': async () => adminServer?.close() },
      flushProducers: {
        'kafka-producer': () => producer.disconnect(),
        regulations: async () => {
          await regulations.stop();
          await statuses.stop();
          await reporter.close();
        },
      },
      closeClients: { workspace: () => workspace.close(), dynamodb: async () => dynamo.destroy() },
    },
  };
}

export const identity: ServiceDefinition<IdentityConfig> = { name: 'identity', env: identityEnv, build };
