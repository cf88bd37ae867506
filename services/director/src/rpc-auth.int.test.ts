// Who may call the RPC and what a job may ask for, against real director processes (dist/main.js;
// build first): the token is required (and never logged), a job may set only allow-listed
// headers, and a job for a destination the workspace does not have is rejected on its own
// without creating a scheduler queue.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type mysql from 'mysql2/promise';
import { createKafka } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  metricValue,
  requireEnv,
  testDatabaseName,
  testTopicPrefix,
  waitServiceReady,
  type HttpSink,
  type ServiceProcess,
} from '@cdp/testkit';
import {
  historyOf,
  postJobs,
  rpcHeaders,
  testJob,
  testWorkspaceJson,
  useDirectorSuite,
  waitFor,
  type DirectorMain,
  type TestEnv,
} from './testing/harness';

const logger = createLogger({ name: 'director-rpc-auth-test', level: 'warn' });
// Random per run: the log check below must not find it by accident.
const TOKEN = `rpc-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
const controlDb = testDatabaseName('actl');
const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let workspaceFile: string;
let topicPrefix: string;
let database: string;
let director: DirectorMain;
let rpc: string;

const job = (messageId: string, extra: Record<string, unknown> = {}) => testJob(messageId, 'hook', extra);

function startDirector(pod: string, extra: Record<string, string>): Promise<DirectorMain> {
  // Every line the director can write (LOG_LEVEL debug), so the token check below sees the most.
  const processEnv = { LOG_LEVEL: 'debug', ...extra };
  return env.directorMain(pod, { controlDb, workspaceFile, topicPrefix, env: processEnv }, { captureOutput: true });
}

/**
 * Resolves 'exited' with the exit code, or 'up' once the director logs that it started. Not
 * /healthz: the service skeleton serves it from before the build, which is where a missing
 * topic or token stops the start.
 */
async function exitedOrUp(proc: ServiceProcess): Promise<{ exited: number | null } | 'up'> {
  let settled = false;
  const up = (async () => {
    while (!settled && !proc.output().includes('director started')) await new Promise((r) => setTimeout(r, 100));
    return 'up' as const;
  })();
  const outcome = await Promise.race([proc.exited.then((code) => ({ exited: code })), up]);
  settled = true;
  return outcome;
}

beforeAll(async () => {
  ({ env, sink } = suite);
  workspaceFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'director-auth-')), 'workspace.json');
  fs.writeFileSync(workspaceFile, testWorkspaceJson([{ id: 'hook', url: `${sink.url}/hook` }]));
  topicPrefix = testTopicPrefix('dirauth');
  await createTestTopics(
    createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-auth-test-admin', logger }),
    topicPrefix,
    { roles: ['undelivered', 'regulation-status'] },
  );
  database = (await env.provision('auth')).database;
  director = await startDirector('auth-a', { DIRECTOR_RPC_TOKEN: TOKEN });
  rpc = director.rpc;
  await waitServiceReady(director);
});

it('refuses to start without DIRECTOR_RPC_TOKEN, naming it, unless DIRECTOR_RPC_INSECURE_NO_TOKEN is set', async () => {
  const bare = await startDirector('auth-bare', {});
  expect(await exitedOrUp(bare)).toEqual({ exited: 1 });
  expect(bare.output()).toMatch(/DIRECTOR_RPC_TOKEN/);

  const insecure = await startDirector('auth-insecure', { DIRECTOR_RPC_INSECURE_NO_TOKEN: 'true' });
  expect(await exitedOrUp(insecure)).toBe('up');
  expect(await insecure.stop('SIGTERM')).toBe(0);
});

it('refuses to start when its topics are missing, naming them', async () => {
  const missingPrefix = testTopicPrefix('dirnotopic');
  const proc = await startDirector('auth-notopic', { DIRECTOR_RPC_TOKEN: TOKEN, CDP_TOPIC_PREFIX: missingPrefix });
  expect(await exitedOrUp(proc)).toEqual({ exited: 1 });
  expect(proc.output()).toContain(
    `missing Kafka topics: ${missingPrefix}undelivered, ${missingPrefix}regulation-status (create them with cdp-topics create)`,
  );
});

it('answers 401 with no details to a call without the token or with a wrong one, before reading the body', async () => {
  const wrongSameLength = TOKEN.slice(0, -1) + (TOKEN.endsWith('a') ? 'b' : 'a');
  const denied = [
    await postJobs(rpc, [job('no-token')], { token: undefined }),
    await postJobs(rpc, [job('wrong-token')], { token: 'wrong' }),
    await postJobs(rpc, [job('wrong-same-length')], { token: wrongSameLength }),
    await postJobs(rpc, [job('token-prefix')], { token: `${TOKEN}x` }),
  ];
  const basic = await fetch(`${rpc}/v1/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${TOKEN}` },
    body: JSON.stringify({ jobs: [job('basic')] }),
  });
  // Invalid JSON without the token: 401, not the 400 a parsed body would give.
  const unparsed = await fetch(`${rpc}/v1/jobs`, { method: 'POST', headers: rpcHeaders(undefined), body: '{nope' });
  for (const res of [
    ...denied,
    { status: basic.status, body: await basic.json() },
    { status: unparsed.status, body: await unparsed.json() },
  ]) {
    expect(res).toEqual({ status: 401, body: { error: { code: 'unauthorized', message: 'unauthorized' } } });
  }

  const ok = await postJobs(rpc, [job('with-token')], { token: TOKEN });
  expect([ok.status, ok.body]).toMatchObject([200, { stored: 1 }]);
  await waitFor(() => sink.count('/hook') >= 1);
  const stored = [...(await historyOf(env, database)).values()].map((h) => h.messageId);
  expect(stored).toEqual(['with-token']);
  expect(director.output()).not.toContain(TOKEN);
});

it('rejects per job a job that sets a header outside the allow-list, naming the header; the rest is stored and delivered', async () => {
  const res = await postJobs(
    rpc,
    [
      job('h-ok', { headers: { 'x-cdp-trace': 't1', 'Content-Type': 'application/json' } }),
      job('h-host', { headers: { Host: 'internal.example' } }),
      job('h-signature', { headers: { 'x-signature': 'forged' } }),
      job('h-auth', { headers: { authorization: 'Bearer other' } }),
      job('h-custom', { headers: { 'x-custom': 'v' } }),
      job('h-ok-2'),
    ],
    { token: TOKEN },
  );
  expect([res.status, res.body]).toMatchObject([200, { accepted: 6, stored: 2, duplicates: 0, rejected: 4 }]);
  const { results } = res.body as { results: Array<{ index: number; status: string; error?: string }> };
  expect(results.map((r) => r.status)).toEqual(['stored', 'rejected', 'rejected', 'rejected', 'rejected', 'stored']);
  expect(results[1].error).toMatch(/\bhost\b/i);
  expect(results[2].error).toMatch(/x-signature/);
  expect(results[3].error).toMatch(/authorization/);
  expect(results[4].error).toMatch(/x-custom/);

  await waitFor(() => sink.requests.filter((r) => /"h-ok/.test(r.body)).length === 2);
  const delivered = sink.requests.filter((r) => /"h-/.test(r.body));
  expect(delivered.map((r) => (JSON.parse(r.body) as { messageId: string }).messageId).sort()).toEqual(['h-ok', 'h-ok-2']);
  const first = delivered.find((r) => r.body.includes('"h-ok"'))!;
  expect(first.headers['x-cdp-trace']).toBe('t1');
  expect(first.headers.host).toBe(new URL(sink.url).host);
  const storedIds = [...(await historyOf(env, database)).values()].map((h) => h.messageId).filter((m) => m.startsWith('h-'));
  expect(storedIds.sort()).toEqual(['h-ok', 'h-ok-2']);
});

it('rejects per job a job for a destination not in the workspace and creates no scheduler queue for it', async () => {
  const res = await postJobs(
    rpc,
    [job('ghost-1', { destinationId: 'ghost' }), job('known-1'), job('ghost-2', { destinationId: 'ghost2' })],
    { token: TOKEN },
  );
  expect([res.status, res.body]).toMatchObject([200, { accepted: 3, stored: 1, rejected: 2 }]);
  const { results } = res.body as { results: Array<{ index: number; status: string; error?: string }> };
  expect(results.map((r) => r.status)).toEqual(['rejected', 'stored', 'rejected']);
  expect(results[0].error).toMatch(/ghost/);
  expect(results[2].error).toMatch(/ghost2/);

  await waitFor(() => sink.requests.some((r) => r.body.includes('"known-1"')));
  // Only `hook` ever had jobs in this director: one queue.
  expect(metricValue(await director.metrics(), 'cdp_director_scheduler_queues')).toBe(1);
  const [{ n }] = await env.query<mysql.RowDataPacket[]>(
    database,
    "SELECT COUNT(*) AS n FROM jobs WHERE destination_id IN ('ghost', 'ghost2')",
  );
  expect(Number(n)).toBe(0);
});
