// Starts services as real processes (their built dist/main.js) on the harness, wired into one
// pipeline: topics under a fresh prefix, a directory per service, one way to reach the broker
// for all of them and for the test's own client. A new service joins by adding its env below.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkKafkaEnv, kafkaEnv, loadConfig, z } from '@cdp/config';
import { createKafka, kafkaConnection, topicNames, type Kafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { freePort, REPO_ROOT, requireEnv, startServiceProcess, testTopicPrefix, waitServiceReady, type ServiceProcess } from '@cdp/testkit';

/** Source `server`'s write key in config/workspace.sample.yaml, the chain's workspace. */
export const SAMPLE_WRITE_KEY = 'wk_server_sample_0001';

export type ChainService = 'tapi' | 'dedup';

interface Launch {
  env: Record<string, string>;
  /** Its HTTP base URL, for a service that serves one. */
  url?: string;
}

/** What each service needs besides Kafka and the topic prefix; `dir` is its own, removed by stop(). */
const SERVICES: Record<ChainService, (prefix: string, dir: string) => Promise<Launch>> = {
  tapi: async (_prefix, dir) => {
    const port = await freePort();
    return {
      url: `http://127.0.0.1:${port}`,
      env: {
        PORT: String(port),
        HOST: '127.0.0.1',
        CDP_WORKSPACE_FILE: path.join(REPO_ROOT, 'config', 'workspace.sample.yaml'),
        CDP_SAMPLE_HMAC_SECRET: 'e2e-only-secret',
        SPOOL_DIR: path.join(dir, 'spool'),
      },
    };
  },
  dedup: async (prefix, dir) => ({
    env: {
      DEDUP_DATA_DIR: dir,
      DEDUP_GROUP_ID: `${prefix}dedup`,
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
}

export interface ChainMember {
  process: ServiceProcess;
  /** Its HTTP base URL, for a service that serves one (tapi). */
  url?: string;
}

export interface Chain {
  prefix: string;
  topics: TopicNames;
  /** A client on the chain's broker connection. */
  kafka: Kafka;
  members: Partial<Record<ChainService, ChainMember>>;
  /** SIGTERMs every service (waiting for each to exit) and removes their directories. */
  stop(): Promise<void>;
}

/** The Kafka fragment alone: what `kafkaEnv` options are read with. */
export const kafkaConnectionSchema = z.object(kafkaEnv).superRefine(checkKafkaEnv);

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
  const members: Chain['members'] = {};
  const dirs: string[] = [];
  const stop = async () => {
    await Promise.all(Object.values(members).map((m) => m.process.stop()));
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const name of services) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cdp-e2e-${name}-`));
      dirs.push(dir);
      const { url, env } = await SERVICES[name](prefix, dir);
      const proc = await startServiceProcess(
        name,
        { ...connectionEnv, CDP_TOPIC_PREFIX: prefix, ...env, ...options.env },
        { captureOutput: options.captureOutput },
      );
      members[name] = { url, process: proc };
    }
    if (ready) await Promise.all(Object.values(members).map((m) => waitServiceReady(m.process)));
  } catch (error) {
    await stop();
    throw error;
  }
  return { prefix, topics, kafka, members, stop };
}
