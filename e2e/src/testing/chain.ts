// Starts services as real processes (their built dist/main.js) on the harness, wired into one
// pipeline: topics under a fresh prefix, a directory per service, one way to reach the broker
// for all of them and for the test's own client. The whole pipeline (`PIPELINE`) runs on the
// sample workspace (config/workspace.sample.yaml) with its webhooks pointed at a sample sink of
// the chain's own (the local stack's, on a free port), its own control database, JobDB names,
// Consul prefix and identity tables. A new service joins by adding its env below.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { TEST_DIRECTOR_ENV } from '@cdp/director/src/testing/harness';
import { dropManagedDatabases, managerProcessEnv, testManagerSettings } from '@cdp/jobdb-manager/src/testing/manager-harness';
import type { JobDbManagerSettings } from '@cdp/jobdb-manager/src/service';
import { checkKafkaEnv, kafkaEnv, loadConfig, z } from '@cdp/config';
import { createKafka, kafkaConnection, topicNames, type Kafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  freePort,
  HttpSink,
  LOCAL_AWS_ENV,
  localS3ClientConfig,
  readSinkLines,
  REPO_ROOT,
  requireEnv,
  startSampleSink,
  startServiceProcess,
  testDatabaseName,
  testTopicPrefix,
  waitServiceReady,
  type ServiceProcess,
  type SinkLine,
} from '@cdp/testkit';

/** Source `server`'s write key in config/workspace.sample.yaml, the chain's workspace. */
export const SAMPLE_WRITE_KEY = 'wk_server_sample_0001';

export type ChainService = 'tapi' | 'dedup' | 'identity' | 'jobdb-manager' | 'director' | 'transform' | 'archiver';

/** Every service of the pipeline, in start order (transform after the director it calls). */
export const PIPELINE: ChainService[] = ['tapi', 'dedup', 'identity', 'jobdb-manager', 'director', 'transform', 'archiver'];

/**
 * The director's retry window in a chain: short, so that an event a destination never accepts
 * goes to cdp.undelivered (and the archive) within a test, and long enough for the pipeline's
 * own latency on a loaded machine.
 */
export const CHAIN_RETRY_WINDOW_MS = 20_000;

/** The sample workspace's HMAC secret for the chain's services (a test value). */
export const SAMPLE_HMAC_SECRET = 'e2e-only-secret';
const SESSION_TTL_MS = 5_000;
/** ADMIN_TOKEN of every service of a chain (Bearer, or the Basic user name). */
export const CHAIN_ADMIN_TOKEN = 'e2e-only-admin-token-0123456789';
const DIRECTOR_RPC_TOKEN = 'e2e-only-director-rpc-token-0123456789';

interface Launch {
  env: Record<string, string>;
  /** Its HTTP base URL, for a service that serves one. */
  url?: string;
}

/** What the services of one chain share: names of their own on the harness, the workspace, the director's URL. */
interface ChainContext {
  prefix: string;
  workspaceFile: string;
  directorPort: number;
  controlDb: string;
  /** jobdb-manager's settings (its JobDB names, control database, Consul prefix), also what is dropped at stop(). */
  manager: ReturnType<typeof testManagerSettings>;
  identityTablePrefix: string;
  /** The archiver's bucket, the chain's own on the harness S3. */
  bucket: string;
  /** The MySQL server of the director and jobdb-manager. */
  mysqlUrl: string;
}

/** What each service needs besides Kafka and the topic prefix; `dir` is its own, removed by stop(). */
const SERVICES: Record<ChainService, (ctx: ChainContext, dir: string) => Promise<Launch>> = {
  tapi: async (ctx, dir) => {
    const port = await freePort();
    return {
      url: `http://127.0.0.1:${port}`,
      env: { PORT: String(port), HOST: '127.0.0.1', CDP_WORKSPACE_FILE: ctx.workspaceFile, SPOOL_DIR: path.join(dir, 'spool') },
    };
  },
  dedup: async (ctx, dir) => ({
    env: {
      DEDUP_DATA_DIR: dir,
      DEDUP_GROUP_ID: `${ctx.prefix}dedup`,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    },
  }),
  identity: async (ctx) => ({
    env: {
      CDP_WORKSPACE_FILE: ctx.workspaceFile,
      ...LOCAL_AWS_ENV,
      DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT'),
      IDENTITY_TABLE_PREFIX: ctx.identityTablePrefix,
      IDENTITY_GROUP_ID: `${ctx.prefix}identity`,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    },
  }),
  'jobdb-manager': async (ctx) => ({ env: managerProcessEnv({ ...ctx.manager, POD_NAME: 'e2e-manager' }, requireEnv('CONSUL_HTTP_ADDR')) }),
  director: async (ctx) => ({
    url: `http://127.0.0.1:${ctx.directorPort}`,
    env: {
      ...TEST_DIRECTOR_ENV,
      DIRECTOR_SESSION_TTL_MS: String(SESSION_TTL_MS),
      DIRECTOR_RETRY_WINDOW_MS: String(CHAIN_RETRY_WINDOW_MS),
      PORT: String(ctx.directorPort),
      MYSQL_URL: ctx.mysqlUrl,
      CDP_CONTROL_DB: ctx.controlDb,
      CONSUL_HTTP_ADDR: requireEnv('CONSUL_HTTP_ADDR'),
      CDP_CONSUL_PREFIX: ctx.manager.CDP_CONSUL_PREFIX,
      CDP_WORKSPACE_FILE: ctx.workspaceFile,
      POD_NAME: 'e2e-director',
      DIRECTOR_RPC_TOKEN,
    },
  }),
  transform: async (ctx) => ({
    env: {
      CDP_WORKSPACE_FILE: ctx.workspaceFile,
      DIRECTOR_RPC_URLS: `http://127.0.0.1:${ctx.directorPort}`,
      DIRECTOR_RPC_TOKEN,
      TRANSFORM_GROUP_ID: `${ctx.prefix}transform`,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    },
  }),
  archiver: async (ctx) => ({
    env: {
      CDP_WORKSPACE_FILE: ctx.workspaceFile,
      ...LOCAL_AWS_ENV,
      S3_ENDPOINT: requireEnv('S3_ENDPOINT'),
      S3_BUCKET: ctx.bucket,
      S3_FORCE_PATH_STYLE: 'true',
      ARCHIVER_GROUP_ID: `${ctx.prefix}archiver`,
      // Objects within seconds (the local stack flushes every 60 s).
      ARCHIVER_FLUSH_AGE_MS: '1000',
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    },
  }),
};

export interface ChainOptions {
  label: string;
  partitions?: number;
  /** The Kafka fragment's env (listener, TLS, SASL) for the services and the chain's client; PLAINTEXT by default. */
  kafkaEnv?: Record<string, string>;
  /** Added to every service's env (e.g. LOG_LEVEL). */
  env?: Record<string, string>;
  /** Create the topics and wait until every service is ready (default); false for a start that is meant to fail. */
  ready?: boolean;
  /** Keep each process's output for `process.output()`. */
  captureOutput?: boolean;
  /** The workspace (a file whose webhooks point at http://127.0.0.1:9999/, the chain's sink); config/workspace.sample.yaml by default. */
  workspace?: string;
  /** The MySQL server of the director and jobdb-manager; the harness's (MYSQL_URL) by default. */
  mysqlUrl?: string;
  /** jobdb-manager settings over the chain's (e.g. a short JOBDB_ROTATION_PERIOD_MS). */
  manager?: Partial<JobDbManagerSettings>;
}

export interface ChainMember {
  process: ServiceProcess;
  /** Its HTTP base URL, for a service that serves one (tapi, director). */
  url?: string;
  /** Its admin server (ADMIN_PORT, `CHAIN_ADMIN_TOKEN`), for a service that has one. */
  adminUrl: string;
}

export interface Chain {
  prefix: string;
  topics: TopicNames;
  /** A client on the chain's broker connection. */
  kafka: Kafka;
  members: Partial<Record<ChainService, ChainMember>>;
  /** The sample sink the chain's workspace delivers to (its routes may answer otherwise, e.g. an outage). */
  sink: HttpSink;
  /** Its file: one JSON line per request, as `npm start`'s .stack/sink.jsonl. */
  sinkFile: string;
  /** The lines of the sink's file so far. */
  sinkLines(): SinkLine[];
  /** The workspace file every service of the chain reads (and reloads on change). */
  workspaceFile: string;
  /** Rewrites the workspace file (atomically: a rename) with `edit` applied to its text. */
  updateWorkspace(edit: (text: string) => string): void;
  /** The Consul folder of the chain's jobdb-manager and directors (JobDB records and their locks). */
  consulPrefix: string;
  /** The archiver's bucket (the chain's own) and a client of the harness S3. */
  s3: { client: S3Client; bucket: string };
  /** Kills a service (SIGKILL unless told) and starts it again with the same env, ports and directory; resolves once it is ready. */
  restart(name: ChainService, signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERMs every service (waiting for each to exit), drops its databases and removes their directories. */
  stop(): Promise<void>;
}

/** The Kafka fragment alone: what `kafkaEnv` options are read with. */
export const kafkaConnectionSchema = z.object(kafkaEnv).superRefine(checkKafkaEnv);

const exec = promisify(execFile);

/** A workspace (the sample one by default) with its webhooks' origin (the local stack's sink, 127.0.0.1:9999) replaced by `sinkUrl`. */
function chainWorkspace(source: string, sinkUrl: string, file: string): string {
  const text = fs.readFileSync(source, 'utf8');
  if (!text.includes('http://127.0.0.1:9999/')) throw new Error(`${source} no longer points at http://127.0.0.1:9999/`);
  fs.writeFileSync(file, text.replaceAll('http://127.0.0.1:9999/', `${sinkUrl}/`));
  return file;
}

export async function startChain(services: ChainService[], options: ChainOptions): Promise<Chain> {
  const connectionEnv = options.kafkaEnv ?? { KAFKA_BROKERS: requireEnv('KAFKA_BROKERS') };
  const ready = options.ready ?? true;
  const prefix = testTopicPrefix(options.label);
  const logger = createLogger({ name: 'e2e', level: 'warn' });
  const kafka = createKafka({
    ...kafkaConnection(loadConfig(kafkaConnectionSchema, connectionEnv)),
    clientId: `e2e-${options.label}`,
    logger,
  });
  const topics = ready ? await createTestTopics(kafka, prefix, { partitions: options.partitions ?? 2 }) : topicNames(prefix);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-e2e-chain-'));
  const sinkFile = path.join(scratch, 'sink.jsonl');
  const sink = await startSampleSink(sinkFile);
  const names = testDatabaseName(options.label);
  const mysqlUrl = options.mysqlUrl ?? requireEnv('MYSQL_URL');
  const ctx: ChainContext = {
    prefix,
    workspaceFile: chainWorkspace(
      options.workspace ?? path.join(REPO_ROOT, 'config', 'workspace.sample.yaml'),
      sink.url,
      path.join(scratch, 'workspace.yaml'),
    ),
    directorPort: await freePort(),
    controlDb: `${names}_ctl`,
    // Sessions of 5 s (not the tests' 1 s): a loaded CI machine must not cost the leader its lock mid-run.
    manager: testManagerSettings(`${names}/`, {
      MYSQL_URL: mysqlUrl,
      CDP_CONTROL_DB: `${names}_ctl`,
      JOBDB_DATABASE_PREFIX: `${names}_j`,
      JOBDB_MANAGER_SESSION_TTL_MS: SESSION_TTL_MS,
      ...options.manager,
    }),
    identityTablePrefix: prefix,
    bucket: names.replace(/_/g, '-'),
    mysqlUrl,
  };
  const s3 = new S3Client(localS3ClientConfig(requireEnv('S3_ENDPOINT')));
  const members: Chain['members'] = {};
  /** Each service's env, for restart(). */
  const launches: Partial<Record<ChainService, Record<string, string>>> = {};
  const dirs: string[] = [scratch];
  const stop = async () => {
    await Promise.all(Object.values(members).map((m) => m.process.stop()));
    await sink.close();
    s3.destroy();
    if (services.includes('jobdb-manager')) await dropManagedDatabases(ctx.manager);
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (services.includes('archiver')) await s3.send(new CreateBucketCommand({ Bucket: ctx.bucket }));
    if (services.includes('identity')) {
      // What the local stack runs before identity: the identity-tables command.
      await exec(process.execPath, [path.join(REPO_ROOT, 'services/identity/dist/tables-cli.js'), 'create'], {
        env: {
          PATH: process.env.PATH ?? '',
          ...LOCAL_AWS_ENV,
          DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT'),
          IDENTITY_TABLE_PREFIX: prefix,
        },
      });
    }
    for (const name of services) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cdp-e2e-${name}-`));
      dirs.push(dir);
      const { url, env } = await SERVICES[name](ctx, dir);
      // An admin port of its own (services without an admin API ignore both).
      const adminPort = await freePort();
      launches[name] = {
        ...connectionEnv,
        CDP_TOPIC_PREFIX: prefix,
        CDP_SAMPLE_HMAC_SECRET: SAMPLE_HMAC_SECRET,
        ADMIN_PORT: String(adminPort),
        ADMIN_TOKEN: CHAIN_ADMIN_TOKEN,
        ...env,
        ...options.env,
      };
      const proc = await startServiceProcess(name, launches[name], { captureOutput: options.captureOutput });
      members[name] = { url, adminUrl: `http://127.0.0.1:${adminPort}`, process: proc };
    }
    if (ready) await Promise.all(Object.values(members).map((m) => waitServiceReady(m.process, 90_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    prefix,
    topics,
    kafka,
    members,
    sink,
    sinkFile,
    sinkLines: () => readSinkLines(sinkFile),
    workspaceFile: ctx.workspaceFile,
    updateWorkspace: (edit) => {
      const next = `${ctx.workspaceFile}.next`;
      fs.writeFileSync(next, edit(fs.readFileSync(ctx.workspaceFile, 'utf8')));
      fs.renameSync(next, ctx.workspaceFile);
    },
    consulPrefix: ctx.manager.CDP_CONSUL_PREFIX,
    s3: { client: s3, bucket: ctx.bucket },
    restart: async (name, signal = 'SIGKILL') => {
      const member = members[name]!;
      await member.process.stop(signal);
      member.process = await startServiceProcess(name, launches[name]!, { captureOutput: options.captureOutput });
      await waitServiceReady(member.process, 90_000);
    },
    stop,
  };
}
