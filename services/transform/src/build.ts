import { createDirectorRpcClient } from '@cdp/director-rpc';
import { regulationKey, regulationSchema, type Envelope, type Regulation } from '@cdp/events';
import {
  CommitAfterWorkConsumer,
  CompactedTopicMap,
  createKafka,
  ensureTopics,
  kafkaConnection,
  RegulationReporter,
  requireTopics,
  topicSettings,
  topicSpecs,
} from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { startAdminServer, type RunningServer } from '@cdp/http';
import { WorkspaceStore } from '@cdp/workspace';
import { adminRoutes } from './admin';
import { transformEnv, type TransformConfig } from './config';
import { deletionConsumer } from './deletions';
import { decode, FanOut } from './fan-out';
import { FunctionRegistry } from './functions/functions';
import { DEFAULT_LIMITS, loadSandboxEngine } from './functions/sandbox';
import { ViolationSamples } from './violations';

/** transform from its config: workspace file, RPC client, the Kafka worker on cdp.identified. */
export async function build(config: TransformConfig, { logger, fatal }: ServiceDeps): Promise<BuiltService> {
  // Insert functions are compiled as each workspace version is loaded: one that does not compile refuses the version.
  const functions = new FunctionRegistry(await loadSandboxEngine(config.TRANSFORM_FUNCTIONS_MEMORY_MB * 1024 * 1024), {
    limits: { ...DEFAULT_LIMITS, timeoutMs: config.TRANSFORM_FUNCTION_TIMEOUT_MS },
    disableAfter: config.TRANSFORM_FUNCTION_DISABLE_AFTER,
    logger: logger.child({ component: 'functions' }),
  });
  const workspace = WorkspaceStore.open({
    file: config.CDP_WORKSPACE_FILE,
    pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS,
    logger,
    check: functions.check,
  });
  workspace.on('change', (next) => functions.retain(next.config));
  workspace.on('rejected', () => functions.retain(workspace.current().config));
  const kafka = createKafka({ ...kafkaConnection(config), clientId: `transform-${process.pid}`, logger });
  const specs = topicSpecs(topicSettings(config));
  // cdp-topics creates the topics; transform verifies its own, failing the start naming a missing one.
  const kafkaAdmin = kafka.admin();
  await kafkaAdmin.connect();
  await (
    config.KAFKA_ENSURE_TOPICS
      ? ensureTopics(kafkaAdmin, [specs.identified, specs.regulations, specs['regulation-status'], specs.dlq])
      : requireTopics(kafkaAdmin, [specs.identified.name, specs.regulations.name, specs['regulation-status'].name, specs.dlq.name])
  ).finally(() => kafkaAdmin.disconnect());
  const rpc = await createDirectorRpcClient(config, logger);
  // GDPR: suppress and delete regulations (cdp.regulations, compacted, keyed spaceId:userId).
  // Transform's part of a regulation is done once its record is in the map: every event routed
  // after that is checked against it (reported on cdp.regulation-status as stage transform).
  const reporter = new RegulationReporter({ kafka, topic: specs['regulation-status'].name, stage: 'transform', logger });
  const regulations = new CompactedTopicMap<Regulation>({
    kafka,
    topic: specs.regulations.name,
    logger: logger.child({ component: 'regulations' }),
    groupPrefix: `${config.TRANSFORM_GROUP_ID}-regulations`,
    decode: (_key, value) => regulationSchema.parse(JSON.parse(value.toString('utf8'))),
    onValue: (_key, value) => reporter.handled(value),
    afterBatch: () => void reporter.flush(),
  });
  const samples = new ViolationSamples();
  const regulation = (spaceId: string, userId: string) => regulations.get(regulationKey(spaceId, userId));
  const fanOut = new FanOut(rpc, () => workspace.current(), logger, { regulation, runCode: functions.runner }, samples);
  let admin: RunningServer | undefined;
  const worker = new CommitAfterWorkConsumer<Envelope>({
    kafka,
    groupId: config.TRANSFORM_GROUP_ID,
    topics: [specs.identified.name],
    dlqTopic: specs.dlq.name,
    stage: 'transform',
    logger,
    decode,
    handle: (items, ctx) => fanOut.handle(items, ctx),
    maxAttempts: config.KAFKA_WORKER_MAX_ATTEMPTS,
    retryInitialMs: config.KAFKA_WORKER_RETRY_INITIAL_MS,
    retryMaxMs: config.KAFKA_WORKER_RETRY_MAX_MS,
    maxChunkMessages: config.TRANSFORM_CHUNK_MESSAGES,
    partitionsConsumedConcurrently: config.TRANSFORM_PARTITIONS_CONCURRENTLY,
    consumerConfig: { sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS, heartbeatInterval: config.KAFKA_HEARTBEAT_INTERVAL_MS },
    onFatal: fatal,
  });
  const deletions = deletionConsumer({
    kafka,
    groupId: `${config.TRANSFORM_GROUP_ID}-deletions`,
    topics: [specs.regulations.name],
    dlqTopic: specs.dlq.name,
    logger: logger.child({ component: 'deletions' }),
    sender: rpc,
    workspace: () => workspace.current(),
    maxAttempts: config.KAFKA_WORKER_MAX_ATTEMPTS,
    retryInitialMs: config.KAFKA_WORKER_RETRY_INITIAL_MS,
    retryMaxMs: config.KAFKA_WORKER_RETRY_MAX_MS,
    onFatal: fatal,
  });
  return {
    start: async () => {
      admin = await startAdminServer({
        service: 'transform',
        port: config.ADMIN_PORT,
        token: config.ADMIN_TOKEN,
        logger,
        routes: adminRoutes({ workspace: () => workspace.current(), samples, regulation, functions }),
      });
      regulations.start();
      // No event is routed before the regulations were read: a suppressed user's would be delivered.
      while (!regulations.caughtUp) await sleep(100);
      await worker.start();
      await deletions.start();
      return { input: specs.identified.name, workspace: workspace.current().version, adminPort: admin.port };
    },
    readiness: [
      { name: 'regulations', check: async () => regulations.follower.readiness() },
      { name: 'kafka-worker', check: async () => worker.readiness() },
      { name: 'deletions', check: async () => deletions.readiness() },
      { name: 'directors', check: async () => fanOut.readiness() },
    ],
    shutdown: {
      // kafkajs finishes the chunk in flight (its jobs get their results) and commits.
      stopInputs: {
        'kafka-worker': () => worker.stop(),
        deletions: () => deletions.stop(),
        'admin-server': async () => admin?.close(1_000),
      },
      closeClients: {
        'director-rpc': () => rpc.close(),
        regulations: () => regulations.stop().then(() => reporter.close()),
        workspace: async () => workspace.close(),
        functions: async () => functions.close(),
      },
    },
  };
}

export const transform: ServiceDefinition<TransformConfig> = { name: 'transform', env: transformEnv, build };
