import { S3Client } from '@aws-sdk/client-s3';
import {
  BatchingProducer,
  CompactedTopicMap,
  createKafka,
  ensureTopics,
  kafkaConnection,
  requireTopics,
  topicSettings,
  topicSpecs,
} from '@cdp/kafka';
import { regulationSchema, type Regulation } from '@cdp/events';
import { startAdminServer, type RunningServer } from '@cdp/http';
import { sleep } from '@cdp/lifecycle';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { WorkspaceStore } from '@cdp/workspace';
import { replayRoutes } from './admin';
import { Archiver } from './archiver';
import { archiverEnv, type ArchiverConfig } from './config';
import { Deleter } from './deleter';
import { ReplayStore } from './replay-store';
import { Replayer } from './replayer';
import { ArchiveWriter } from './writer';

/** The archiver from its config: S3 writer, the cdp.regulations map, the consumer of cdp.deduped and cdp.undelivered. */
export async function build(config: ArchiverConfig, { logger }: ServiceDeps): Promise<BuiltService> {
  const kafka = createKafka({ ...kafkaConnection(config), clientId: `archiver-${process.pid}`, logger });
  const specs = topicSpecs(topicSettings(config));
  const workspace = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS, logger });
  const s3 = new S3Client({ region: config.AWS_REGION, endpoint: config.S3_ENDPOINT, forcePathStyle: config.S3_FORCE_PATH_STYLE });
  const statusProducer = new BatchingProducer(kafka, { logger });
  const deleter = new Deleter({
    s3,
    bucket: config.S3_BUCKET,
    sourcesOf: (spaceId) =>
      workspace
        .current()
        .config.sources.filter((s) => s.spaceId === spaceId)
        .map((s) => s.id),
    report: async (status) => {
      await statusProducer.send(specs['regulation-status'].name, [
        { key: `${status.regulationId}:${status.stage}`, value: JSON.stringify(status) },
      ]);
    },
    logger: logger.child({ component: 'deletion' }),
    leaseMs: config.ARCHIVER_DELETION_LEASE_MS,
  });
  const regulations = new CompactedTopicMap<Regulation>({
    kafka,
    topic: specs.regulations.name,
    logger: logger.child({ component: 'regulations' }),
    groupPrefix: `${config.ARCHIVER_GROUP_ID}-regulations`,
    decode: (_key, value) => {
      const regulation = regulationSchema.parse(JSON.parse(value.toString('utf8')));
      deleter.notice(regulation);
      return regulation;
    },
  });
  const select = {
    spaceOf: (sourceId: string) => workspace.current().source(sourceId)?.spaceId,
    regulation: (spaceId: string, userId: string) => regulations.get(`${spaceId}:${userId}`),
  };
  const store = new ReplayStore(s3, config.S3_BUCKET);
  const replayer = new Replayer({
    kafka,
    s3,
    bucket: config.S3_BUCKET,
    store,
    topic: specs.deduped.name,
    groupId: config.ARCHIVER_GROUP_ID,
    select,
    logger: logger.child({ component: 'replay' }),
    leaseMs: config.ARCHIVER_REPLAY_LEASE_MS,
  });
  let adminServer: RunningServer | undefined;
  const archiver = new Archiver({
    kafka,
    groupId: config.ARCHIVER_GROUP_ID,
    topics: { [specs.deduped.name]: 'raw', [specs.undelivered.name]: 'undelivered' },
    dlqTopic: specs.dlq.name,
    writer: new ArchiveWriter({ client: s3, bucket: config.S3_BUCKET, partSizeBytes: config.ARCHIVER_PART_SIZE_BYTES }),
    select,
    logger,
    flushBytes: config.ARCHIVER_FLUSH_BYTES,
    flushAgeMs: config.ARCHIVER_FLUSH_AGE_MS,
    partitionsConcurrently: config.ARCHIVER_PARTITIONS_CONCURRENTLY,
    sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatIntervalMs: config.KAFKA_HEARTBEAT_INTERVAL_MS,
  });
  return {
    start: async () => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const own = [specs.deduped, specs.undelivered, specs.regulations, specs['regulation-status'], specs.dlq];
        if (config.KAFKA_ENSURE_TOPICS) await ensureTopics(admin, own);
        else
          await requireTopics(
            admin,
            own.map((s) => s.name),
          );
      } finally {
        await admin.disconnect();
      }
      await statusProducer.connect();
      regulations.start();
      // Nothing is archived before the regulations were read: a suppressed user's events would be.
      while (!regulations.caughtUp) await sleep(100);
      await archiver.start();
      replayer.start();
      deleter.start();
      adminServer = await startAdminServer({
        service: 'archiver',
        port: config.ADMIN_PORT,
        host: config.HOST,
        token: config.ADMIN_TOKEN,
        logger: logger.child({ component: 'admin' }),
        routes: replayRoutes({ store, replayer, defaultRate: config.ARCHIVER_REPLAY_RATE }),
      });
      return { inputs: [specs.deduped.name, specs.undelivered.name], bucket: config.S3_BUCKET, adminPort: adminServer.port };
    },
    readiness: [
      { name: 'regulations', check: async () => regulations.follower.readiness() },
      { name: 'kafka-consumer-group', check: async () => archiver.readiness() },
    ],
    shutdown: {
      stopInputs: {
        'admin-server': async () => adminServer?.close(2_000),
        replays: () => replayer.stop(),
        deletions: () => deleter.stop(),
        'kafka-consumer': () => archiver.stop(),
      },
      flushProducers: { 'regulation-status': () => statusProducer.disconnect() },
      closeClients: {
        'dead-letters': () => archiver.close(),
        regulations: () => regulations.stop(),
        workspace: () => workspace.close(),
        s3: () => s3.destroy(),
      },
    },
  };
}

export const archiver: ServiceDefinition<ArchiverConfig> = { name: 'archiver', env: archiverEnv, build };
