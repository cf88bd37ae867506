// The RPC's per-job answer against a real director, MariaDB and sink: errors that would repeat
// are rejected per job (not 503, not a "duplicate"), the rest of the batch is stored and delivered.
import type { HttpSink } from '@cdp/testkit';
import type { Director } from './service';
import { historyOf, postJobs, TestEnv, testJob, testSettings, testWorkspace, useDirectorSuite, waitFor } from './testing/harness';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let director: Director;
let database: string;

const job = (messageId: string, payload?: unknown) => testJob(messageId, 'hook', payload === undefined ? {} : { payload });

beforeAll(async () => {
  ({ env, sink } = suite);
  const ws = testWorkspace([{ id: 'hook', url: `${sink.url}/hook`, maxConcurrency: 4 }]);
  database = (await env.provision('rpc')).database;
  // A body above MariaDB's max_allowed_packet (16 MiB here) must reach the insert.
  director = env.director(testSettings(env.prefix, { DIRECTOR_RPC_MAX_BODY_BYTES: 64 << 20 }), {
    workspace: () => ws,
  });
  await director.start();
  await waitFor(() => director.isReady);
});

it('rejects a lone-surrogate payload and one over max_allowed_packet per job, stores the rest, counts true duplicates', async () => {
  expect((await postJobs(director.url!, [job('seen')])).status).toBe(200);
  const res = await postJobs(director.url!, [
    job('ok-1'),
    job('surrogate', { type: 'track', event: 'x\ud800y' }),
    job('huge', { type: 'track', event: 'E', blob: 'b'.repeat(17 << 20) }),
    job('seen'),
    job('ok-2'),
  ]);
  expect([res.status, res.body]).toMatchObject([200, { accepted: 5, stored: 2, duplicates: 1, rejected: 2 }]);
  const { results } = res.body as { results: Array<{ index: number; status: string; error?: string }> };
  expect(results.map((r) => [r.index, r.status])).toEqual([
    [0, 'stored'],
    [1, 'rejected'],
    [2, 'rejected'],
    [3, 'duplicate'],
    [4, 'stored'],
  ]);
  expect(results[1].error).toMatch(/json/i);
  expect(results[2].error).toMatch(/max_allowed_packet/);

  await waitFor(async () => [...(await historyOf(env, database)).values()].filter((h) => h.states.at(-1) === 'succeeded').length === 3);
  const stored = [...(await historyOf(env, database)).values()].map((h) => h.messageId).sort();
  expect(stored).toEqual(['ok-1', 'ok-2', 'seen']);
  const delivered = sink.requests.map((r) => (JSON.parse(r.body) as { messageId: string }).messageId).sort();
  expect(delivered).toEqual(['ok-1', 'ok-2', 'seen']);
});

it('the same batch sent twice at once is stored once: one answer stores each job, the other counts it a duplicate', async () => {
  const batch = Array.from({ length: 200 }, (_, i) => job(`race-${i}`));
  const answers = await Promise.all([postJobs(director.url!, batch), postJobs(director.url!, batch)]);
  expect(answers.map((a) => a.status)).toEqual([200, 200]);
  const bodies = answers.map((a) => a.body as { stored: number; duplicates: number; results: Array<{ status: string }> });
  expect(bodies[0].stored + bodies[1].stored).toBe(200);
  expect(bodies[0].duplicates + bodies[1].duplicates).toBe(200);
  for (let i = 0; i < 200; i++) expect([bodies[0].results[i].status, bodies[1].results[i].status].sort()).toEqual(['duplicate', 'stored']);
  const [{ n }] = await env.query(database, "SELECT COUNT(*) AS n FROM jobs WHERE message_id LIKE 'race-%'");
  expect(Number(n)).toBe(200);
});
