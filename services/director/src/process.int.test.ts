// The director as real processes (dist/main.js; build first): SIGKILL takeover, SIGTERM drain,
// expiry to a real cdp.undelivered topic, and the append-only rule checked in MariaDB's general log.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { undeliveredSchema } from '@cdp/events';
import { createKafka, type InboundMessage } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { requireEnv, rowChangingStatements, statementsAgainst, testDatabaseName, testTopicPrefix, type HttpSink } from '@cdp/testkit';
import {
  EXPIRY_TEST_SESSION_TTL_MS,
  historyOf,
  postJobs,
  TEST_RPC_TOKEN,
  testJobs,
  testWorkspaceJson,
  useDirectorSuite,
  waitFor,
  type DirectorMain,
  type TestEnv,
} from './testing/harness';

const logger = createLogger({ name: 'director-process-test', level: 'warn' });
const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let workspaceFile: string;
let topicPrefix: string;
const controlDb = testDatabaseName('pctl');

const startDirector = (pod: string, extra: Record<string, string> = {}) =>
  env.directorMain(pod, { controlDb, workspaceFile, topicPrefix, env: { DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN, ...extra } });

async function ready(p: DirectorMain): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${p.opsPort}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

const jobs = (n: number, from: number, destinationId: string, extra: Record<string, unknown> = {}) =>
  testJobs(n, 'p', { from, destinationId, extra });

beforeAll(async () => {
  ({ env, sink } = suite);
  sink.route('/hook', () => ({ status: 200, delayMs: 20 }));
  sink.route('/down', () => ({ status: 503, body: 'maintenance' }));
  workspaceFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'director-')), 'workspace.json');
  fs.writeFileSync(
    workspaceFile,
    testWorkspaceJson([
      { id: 'hook', url: `${sink.url}/hook`, maxConcurrency: 20 },
      { id: 'down', url: `${sink.url}/down` },
    ]),
  );
  topicPrefix = testTopicPrefix('director');
  await createTestTopics(createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-test-admin', logger }), topicPrefix, {
    roles: ['undelivered', 'regulation-status'],
  });
});

function readUndelivered(count: number): Promise<InboundMessage[]> {
  const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-test-reader', logger });
  return readTopic(kafka, `${topicPrefix}undelivered`, count);
}

describe('director processes', () => {
  it('SIGKILL of the holder: the other takes over, every job ends in exactly one final state; only INSERT/SELECT ran; SIGTERM releases the lock', async () => {
    const jdb = await env.provision('proc');
    const statements = await statementsAgainst(jdb.database, async () => {
      // A is SIGKILLed below: its session must run out before B takes over.
      const a = await startDirector('pa', { DIRECTOR_SESSION_TTL_MS: String(EXPIRY_TEST_SESSION_TTL_MS) });
      await waitFor(() => ready(a), 30_000);
      const b = await startDirector('pb');
      await waitFor(async () => (await fetch(`http://127.0.0.1:${b.opsPort}/healthz`).catch(() => null))?.status === 200, 30_000);
      expect(await ready(b)).toBe(false);

      for (let i = 0; i < 4; i++) expect((await postJobs(a.rpc, jobs(100, i * 100, 'hook'))).status).toBe(200);
      // Expire quickly against an endpoint that is down: → cdp.undelivered.
      expect((await postJobs(a.rpc, jobs(3, 1_000, 'down', { expiresAt: new Date(Date.now() + 1_500).toISOString() }))).status).toBe(200);
      await waitFor(() => sink.count('/hook') >= 80);
      // A has committed the expiring jobs' first attempt (503): B adopts them already expired and
      // reports that attempt (killed before its commit, they would reach B unattempted).
      const expiring = (h: { messageId: string }) => Number(h.messageId.slice(1)) >= 1_000 && Number(h.messageId.slice(1)) < 2_000;
      await waitFor(
        async () =>
          [...(await historyOf(env, jdb.database)).values()].filter((h) => expiring(h) && h.rows.some((r) => r.http_status !== null))
            .length === 3,
        30_000,
      );
      await a.stop('SIGKILL');

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
        if (expiring(h)) continue;
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
      expect(await b.stop('SIGTERM')).toBe(0);
      const after = await historyOf(env, jdb.database);
      const late = [...after.values()].filter((h) => Number(h.messageId.slice(1)) >= 2_000);
      expect(late).toHaveLength(300);
      expect(late.filter((h) => h.states.at(-1) === 'executing')).toEqual([]);
      const lateIds = new Set(late.map((h) => h.messageId));
      const lateReceived = new Set(
        sink.requests
          .filter((r) => r.path === '/hook')
          .map((r) => JSON.parse(r.body).messageId as string)
          .filter((id) => lateIds.has(id)),
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
