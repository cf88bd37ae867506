// The director as real processes (dist/main.js; build first): SIGKILL takeover, SIGTERM drain,
// expiry to a real cdp.undelivered topic, and the append-only rule checked in MariaDB's general log.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { undeliveredSchema } from '@cdp/events';
import { CommitAfterWorkConsumer, createKafka, ensureTopics, topicSpecs, type InboundMessage } from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { freePort, mysqlUrl, requireEnv, rowChangingStatements, statementsAgainst, testDatabaseName, testTopicPrefix } from '@cdp/testkit';
import { historyOf, postJobs, Sink, TEST_RPC_TOKEN, TestEnv, waitFor } from './testing/harness';

const MAIN = path.resolve(__dirname, '../dist/main.js');
const logger = createLogger({ name: 'director-process-test', level: 'warn' });
let consulServer: ConsulDevServer;
let env: TestEnv;
let sink: Sink;
let workspaceFile: string;
let topicPrefix: string;
const children: ChildProcess[] = [];
const controlDb = testDatabaseName('pctl');

interface Proc {
  child: ChildProcess;
  rpc: string;
  ops: string;
  exited: Promise<number | null>;
}

async function startDirector(pod: string): Promise<Proc> {
  const port = await freePort();
  const opsPort = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      OPS_PORT: String(opsPort),
      MYSQL_URL: mysqlUrl(),
      CDP_CONTROL_DB: controlDb,
      CONSUL_HTTP_ADDR: consulServer.url,
      CDP_CONSUL_PREFIX: env.prefix,
      KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
      CDP_TOPIC_PREFIX: topicPrefix,
      CDP_WORKSPACE_FILE: workspaceFile,
      POD_NAME: pod,
      DIRECTOR_SESSION_TTL_MS: '1000',
      DIRECTOR_LOCK_DELAY_MS: '500',
      DIRECTOR_RECONCILE_INTERVAL_MS: '250',
      DIRECTOR_BACKOFF_BASE_MS: '100',
      DIRECTOR_BACKOFF_CAP_MS: '300',
      DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, rpc: `http://127.0.0.1:${port}`, ops: `http://127.0.0.1:${opsPort}`, exited };
}

async function ready(p: Proc): Promise<boolean> {
  try {
    return (await fetch(`${p.ops}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

function jobs(n: number, from: number, destinationId: string, extra: Record<string, unknown> = {}) {
  return Array.from({ length: n }, (_, i) => ({
    sourceId: 'web',
    messageId: `p${from + i}`,
    destinationId,
    subscriptionId: 'default',
    payload: { type: 'track', messageId: `p${from + i}`, event: 'E' },
    ...extra,
  }));
}

beforeAll(async () => {
  consulServer = await startConsulDevServer({ minTtlMs: 500, ttlMultiplier: 1 });
  env = new TestEnv(consulServer.url);
  sink = new Sink();
  sink.route('/hook', () => ({ status: 200, delayMs: 20 }));
  sink.route('/down', () => ({ status: 503, body: 'maintenance' }));
  await sink.start();
  workspaceFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'director-')), 'workspace.json');
  fs.writeFileSync(
    workspaceFile,
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] }],
      destinations: [
        { id: 'hook', name: 'hook', type: 'webhook', settings: { url: `${sink.url}/hook` }, limits: { maxConcurrency: 20 } },
        { id: 'down', name: 'down', type: 'webhook', settings: { url: `${sink.url}/down` } },
      ],
      connections: [
        { sourceId: 'web', destinationId: 'hook' },
        { sourceId: 'web', destinationId: 'down' },
      ],
    }),
  );
  topicPrefix = testTopicPrefix('director');
  const admin = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-test-admin', logger }).admin();
  await admin.connect();
  await ensureTopics(admin, [topicSpecs({ prefix: topicPrefix, replicationFactor: 1, defaultPartitions: 1 }).undelivered]);
  await admin.disconnect();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await env.cleanup();
  const conn = await mysql.createConnection({ uri: mysqlUrl() });
  await conn.query(`DROP DATABASE IF EXISTS \`${controlDb}\``);
  await conn.end();
  await sink.close();
  await consulServer.close();
});

async function readUndelivered(count: number): Promise<InboundMessage[]> {
  const got: InboundMessage[] = [];
  const k = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-test-reader', logger });
  const consumer = new CommitAfterWorkConsumer<null>({
    kafka: k,
    groupId: `reader-${Math.random().toString(36).slice(2)}`,
    topics: [`${topicPrefix}undelivered`],
    logger,
    stage: 'reader',
    dlqTopic: `${topicPrefix}dlq-unused`,
    consumerConfig: { sessionTimeout: 6_000, heartbeatInterval: 1_000 },
    decode: () => null,
    handle: async (items) => {
      got.push(...items.map((i) => i.message));
    },
  });
  await consumer.start();
  await waitFor(() => got.length >= count, 30_000, 100).catch(() => undefined);
  await consumer.stop();
  return got;
}

describe('director processes', () => {
  it('SIGKILL of the holder: the other takes over, every job ends in exactly one final state; only INSERT/SELECT ran; SIGTERM releases the lock', async () => {
    const jdb = await env.provision('proc');
    const statements = await statementsAgainst(jdb.database, async () => {
      const a = await startDirector('pa');
      await waitFor(() => ready(a), 30_000);
      const b = await startDirector('pb');
      await waitFor(async () => (await fetch(`${b.ops}/healthz`).catch(() => null))?.status === 200, 30_000);
      expect(await ready(b)).toBe(false);

      for (let i = 0; i < 4; i++) expect((await postJobs(a.rpc, jobs(100, i * 100, 'hook'))).status).toBe(200);
      // Expire quickly against an endpoint that is down: → cdp.undelivered.
      expect((await postJobs(a.rpc, jobs(3, 1_000, 'down', { expiresAt: new Date(Date.now() + 1_500).toISOString() }))).status).toBe(200);
      await waitFor(() => sink.count('/hook') >= 80);
      a.child.kill('SIGKILL');
      await a.exited;

      await waitFor(() => ready(b), 30_000);
      let history!: Awaited<ReturnType<typeof historyOf>>;
      await waitFor(async () => {
        history = await historyOf(env, jdb.database);
        return history.size === 403 && [...history.values()].every((h) => ['succeeded', 'archived'].includes(h.states.at(-1)!));
      }, 60_000);
      for (const h of history.values()) {
        expect(h.states.filter((s) => s === 'succeeded' || s === 'discarded' || s === 'archived')).toHaveLength(1);
      }
      const received = new Map<string, number>();
      for (const r of sink.requests.filter((x) => x.path === '/hook')) {
        const id = JSON.parse(r.body).messageId as string;
        received.set(id, (received.get(id) ?? 0) + 1);
      }
      for (const h of history.values()) {
        if (Number(h.messageId.slice(1)) >= 1_000) continue; // the expiring ones
        const n = received.get(h.messageId) ?? 0;
        expect(n).toBeGreaterThanOrEqual(1);
        if (n > 1) expect(h.rows.some((r) => String(r.error ?? '').startsWith('interrupted'))).toBe(true);
      }

      const undelivered = (await readUndelivered(3)).map((m) => JSON.parse(String(m.value)));
      const mine = undelivered.filter((u) => String(u.messageId).startsWith('p10'));
      expect(mine.length).toBeGreaterThanOrEqual(3);
      for (const u of mine) {
        expect(undeliveredSchema.safeParse(u).success).toBe(true);
        expect(u).toMatchObject({ destinationId: 'down', lastStatus: 503, lastError: 'HTTP 503', lastResponseExcerpt: 'maintenance' });
      }

      // SIGTERM mid-delivery: in-flight calls finish and are persisted (nothing left
      // `executing`), the process exits 0, the lock is released (no lock-delay for the next holder).
      const before = sink.count('/hook');
      expect((await postJobs(b.rpc, jobs(300, 2_000, 'hook'))).status).toBe(200);
      await waitFor(() => sink.count('/hook') >= before + 30);
      b.child.kill('SIGTERM');
      expect(await b.exited).toBe(0);
      const after = await historyOf(env, jdb.database);
      const late = [...after.values()].filter((h) => Number(h.messageId.slice(1)) >= 2_000);
      expect(late).toHaveLength(300);
      expect(late.filter((h) => h.states.at(-1) === 'executing')).toEqual([]);
      const lateIds = new Set(late.map((h) => h.messageId));
      const lateReceived = new Set(
        sink.requests.filter((r) => r.path === '/hook').map((r) => JSON.parse(r.body).messageId as string).filter((id) => lateIds.has(id)),
      );
      // Every call that reached the sink before the stop has its outcome committed.
      for (const h of late) if (lateReceived.has(h.messageId)) expect(h.states.at(-1)).toBe('succeeded');
      const lock = await env.consul.kv.get(env.keys.jobDbLock(jdb.id));
      expect(lock?.Session).toBeUndefined();
    });
    expect(statements.filter((t) => /^INSERT INTO job_state_transitions/i.test(t)).length).toBeGreaterThan(0);
    expect(rowChangingStatements(statements)).toEqual([]);
  });
});
