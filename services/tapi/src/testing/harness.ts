import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { decodeEnvelope, type Envelope } from '@cdp/events';
import type { OpsServer } from '@cdp/http';
import { BatchingProducer, createKafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics, TopicCollector } from '@cdp/kafka/testing';
import { createLogger, type Logger } from '@cdp/log';
import { startService } from '@cdp/service';
import {
  canConnect,
  freePort,
  REPO_ROOT,
  resolveJars,
  spawnDaemon,
  startServiceProcess,
  testTopicPrefix,
  waitFor,
  waitServiceReady,
  type KafkaBroker,
  type ServiceProcess,
} from '@cdp/testkit';
import { tapiEnv, type TapiConfig } from '../config';
import { tapi } from '../build';
import type { TapiService } from '../service';

export const WRITE_KEY = 'wk_web_test_0001';
export const SERVER_KEY = 'wk_server_test_0001';
export const DISABLED_KEY = 'wk_disabled_test_0001';
export const LIMITED_KEY = 'wk_limited_test_0001';

/** A workspace with an open source, a second source, a disabled one and a rate-limited one. */
export function workspaceJson(): string {
  return JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [
      { id: 'web', name: 'Web', spaceId: 'main', writeKeys: [WRITE_KEY] },
      { id: 'server', name: 'Server', spaceId: 'main', writeKeys: [SERVER_KEY] },
      { id: 'off', name: 'Disabled', spaceId: 'main', enabled: false, writeKeys: [DISABLED_KEY] },
      { id: 'limited', name: 'Limited', spaceId: 'main', writeKeys: [LIMITED_KEY], rateLimit: { eventsPerSecond: 1, burst: 5 } },
    ],
    destinations: [],
    connections: [],
  });
}

/** tapi's parts (what build returned) with its ops server and stop() (the shutdown phases; resolves to the exit code). */
export type InProcessTapi = TapiService & { ops: OpsServer; stop(): Promise<number> };

export interface TapiTestEnv {
  dir: string;
  prefix: string;
  topics: TopicNames;
  brokers: string;
  kafka: Kafka;
  logger: Logger;
  producer: BatchingProducer;
  baseEnv: Record<string, string>;
  config(overrides?: Record<string, string>): TapiConfig;
  /** The last warnings and errors logged (with `keepWarnings`), for failure messages. */
  recentLogs(): string;
  /** tapi in this process, built and started like main.ts (SHUTDOWN_TIMEOUT_MS 9 s unless overridden: a 1 s spool drain). */
  start(overrides?: Record<string, string>): Promise<InProcessTapi>;
  close(): Promise<void>;
}

/** The last `max` log lines, kept in memory so a failing test can show what the service said. */
class RecentLines {
  private lines: string[] = [];
  constructor(private readonly max: number) {}
  write(line: string): void {
    this.lines.push(line.trimEnd());
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

export async function createTapiTestEnv(
  label: string,
  options: { brokers?: string; partitions?: number; keepWarnings?: boolean } = {},
): Promise<TapiTestEnv> {
  const brokers = options.brokers ?? requireBrokers();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tapi-${label}-`));
  const prefix = testTopicPrefix(`tapi-${label}`);
  const recent = new RecentLines(60);
  const logger = options.keepWarnings
    ? createLogger({ name: 'tapi-test', level: process.env.TAPI_TEST_LOG_LEVEL ?? 'warn', destination: recent })
    : createLogger({ name: 'tapi-test', level: process.env.TAPI_TEST_LOG_LEVEL ?? 'silent' });
  const kafka = createKafka({ brokers: [brokers], clientId: 'tapi-test', logger });
  const topics = await createTestTopics(kafka, prefix, { partitions: options.partitions ?? 3 });
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const workspaceFile = path.join(dir, 'workspace.json');
  fs.writeFileSync(workspaceFile, workspaceJson());
  const baseEnv: Record<string, string> = {
    PORT: '0',
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    KAFKA_BROKERS: brokers,
    CDP_TOPIC_PREFIX: prefix,
    CDP_WORKSPACE_FILE: workspaceFile,
    SPOOL_DIR: path.join(dir, 'spool'),
    LOG_LEVEL: 'silent',
    PUBLISH_TIMEOUT_MS: '1500',
    KAFKA_PROBE_INTERVAL_MS: '300',
  };
  const started: InProcessTapi[] = [];
  const env: TapiTestEnv = {
    dir,
    prefix,
    topics,
    brokers,
    kafka,
    logger,
    producer,
    baseEnv,
    config: (overrides = {}) => tapiEnv.parse({ ...baseEnv, ...overrides }),
    recentLogs: () => recent.text(),
    start: async (overrides = {}) => {
      const running = await startService(tapi, env.config({ SHUTDOWN_TIMEOUT_MS: '9000', ...overrides }), { logger });
      const instance = Object.assign(running.service, { ops: running.ops, stop: running.stop });
      started.push(instance);
      return instance;
    },
    close: async () => {
      for (const s of started) await s.stop().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

function requireBrokers(): string {
  const b = process.env.KAFKA_BROKERS;
  if (!b) throw new Error('KAFKA_BROKERS is not set: run through the integration project (its globalSetup starts Kafka)');
  return b;
}

/** A built tapi (dist/main.js) as its own process, on the env's topics and workspace. */
export interface TapiProcess extends ServiceProcess {
  url: string;
}

/** Starts tapi as a real process (build first) and waits until it is ready. */
export async function startTapiProcess(env: TapiTestEnv, overrides: Record<string, string> = {}): Promise<TapiProcess> {
  // OPS_PORT comes from startServiceProcess, LOG_LEVEL from TEST_LOG_LEVEL (warn by default).
  const { OPS_PORT: _opsPort, LOG_LEVEL: _logLevel, ...base } = env.baseEnv;
  const port = await freePort();
  const proc = await startServiceProcess('tapi', { ...base, PORT: String(port), ...overrides });
  try {
    await waitServiceReady(proc);
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return Object.assign(proc, { url: `http://127.0.0.1:${port}` });
}

/** Polls /readyz until it answers 200. */
export async function waitReady(service: InProcessTapi, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${service.ops.url}/readyz`).catch(() => undefined);
    if (res?.status === 200) return;
    if (Date.now() > until) throw new Error(`tapi not ready: ${res ? await res.text() : 'no answer'}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function metrics(service: InProcessTapi): Promise<string> {
  return (await fetch(`${service.ops.url}/metrics`)).text();
}

export const basicAuth = (key: string, colon = true) => `Basic ${Buffer.from(colon ? `${key}:` : key).toString('base64')}`;

/**
 * Follows a topic from the beginning, indexing envelopes by messageId. `catchUp()` waits until
 * everything written before the call was read: since tapi answers 200 only after the Kafka ack,
 * an event absent after catchUp() was not published.
 */
export class EnvelopeCollector extends TopicCollector<Envelope> {
  readonly byId = new Map<string, Envelope[]>();

  constructor(kafka: Kafka, topic: string) {
    super(kafka, topic, (message) => decodeEnvelope(message.value));
  }

  protected override received(envelope: Envelope): void {
    super.received(envelope);
    const list = this.byId.get(envelope.messageId) ?? [];
    list.push(envelope);
    this.byId.set(envelope.messageId, list);
  }

  /** Waits until every id was seen (or the time is up) and returns the first envelope of each. */
  async waitForIds(ids: string[], timeoutMs = 30_000): Promise<Envelope[]> {
    await this.until(() => ids.every((id) => this.byId.has(id)), timeoutMs);
    return ids.map((id) => this.byId.get(id)?.[0]).filter((e): e is Envelope => e !== undefined);
  }
}

/**
 * Restarts a private broker stopped by the test on the same ports and data (a broker outage,
 * not a new cluster). testkit's startKafkaBroker always makes a fresh one.
 */
export async function restartKafkaBroker(broker: KafkaBroker): Promise<KafkaBroker> {
  const jars = await resolveJars('kafka');
  const config = path.join(broker.dataDir, 'server.properties');
  const log4j = `-Dlog4j.configuration=file:${path.join(REPO_ROOT, 'libs', 'testkit', 'maven', 'kafka', 'log4j.properties')}`;
  const proc = spawnDaemon(
    'kafka',
    'java',
    [
      '-Xms256m',
      '-Xmx512m',
      '-XX:+UseG1GC',
      '-XX:ActiveProcessorCount=2',
      '-Djava.awt.headless=true',
      log4j,
      '-cp',
      `${jars}/*`,
      'kafka.Kafka',
      config,
    ],
    { logFile: path.join(broker.dataDir, 'kafka.log') },
  );
  const port = Number(broker.brokers.split(':')[1]);
  const until = Date.now() + 90_000;
  while (!(await canConnect(port))) {
    if (Date.now() > until) throw new Error('restarted broker did not listen');
    await new Promise((r) => setTimeout(r, 250));
  }
  return { ...broker, process: proc };
}

export interface LoadResult {
  acked: string[];
  refused: number;
  statuses: Record<string, number>;
}

/**
 * A bounded sequential load: batches of `batchSize` events every `intervalMs` to whatever URL
 * `target()` gives, remembering the messageIds of every 200. Stops at stop(), `maxRequests` or
 * `maxMs`, whichever comes first.
 */
export function startLoad(
  target: () => string | undefined,
  options: {
    label: string;
    batchSize?: number;
    intervalMs?: number;
    maxRequests?: number;
    maxMs?: number;
    writeKey?: string;
    userId?: () => string;
  },
): {
  stop: () => Promise<LoadResult>;
  result: LoadResult;
  /** Resolves once `n` more events were acknowledged (counted from the call): a phase of the load, measured by its progress rather than by time. */
  acked: (n: number, timeoutMs?: number) => Promise<void>;
} {
  const result: LoadResult = { acked: [], refused: 0, statuses: {} };
  let running = true;
  const started = Date.now();
  const loop = (async () => {
    for (let i = 0; running && i < (options.maxRequests ?? 5_000) && Date.now() - started < (options.maxMs ?? 120_000); i++) {
      const ids = Array.from({ length: options.batchSize ?? 5 }, (_, j) => `${options.label}-${i}-${j}`);
      const url = target();
      let status = 'down';
      if (url) {
        try {
          const res = await fetch(`${url}/v1/batch`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: basicAuth(options.writeKey ?? WRITE_KEY) },
            body: JSON.stringify({
              batch: ids.map((messageId) => ({ type: 'track', messageId, userId: options.userId?.() ?? 'load-user', event: 'Load' })),
            }),
            signal: AbortSignal.timeout(15_000),
          });
          status = String(res.status);
          await res.arrayBuffer();
          if (res.status === 200) result.acked.push(...ids);
        } catch {
          status = 'error';
        }
      }
      if (status !== '200') result.refused++;
      result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      await new Promise((r) => setTimeout(r, options.intervalMs ?? 10));
    }
  })();
  return {
    result,
    stop: async () => {
      running = false;
      await loop;
      return result;
    },
    acked: (n, timeoutMs = 60_000) => {
      const target = result.acked.length + n;
      return waitFor(() => result.acked.length >= target, timeoutMs);
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js <args>` (build first) with only PATH and `env`; never rejects. */
export function runTapiCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const cli = path.join(__dirname, '..', '..', 'dist', 'cli.js');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 90_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
