// @cdp/director-rpc's client against real director processes (dist/testing/director-process.js;
// build first): batches spread over two directors, and a director stopped in the middle of a
// send — SIGTERM (drains: every job stored exactly once over the JobDBs) and SIGKILL (batches in
// flight at the kill may be stored at both: across JobDBs the RPC is at-least-once).
import { directorRpcClientSchema } from '@cdp/config';
import { createDirectorRpcClient, DirectorRpcClient, DirectorRpcRefusedError, staticDiscovery, type JobResult } from '@cdp/director-rpc';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { metricValue } from '@cdp/testkit';
import { TEST_RPC_TOKEN, TestEnv, testJobs, testSettings, useDirectorSuite, waitFor, type JobDbHandle } from './testing/harness';

const logger = createLogger({ name: 'rpc-client-test', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' });
const suite = useDirectorSuite();

type DirectorProc = Awaited<ReturnType<TestEnv['directorProcess']>> & { jobDb: JobDbHandle };

async function leases(jobDb: JobDbHandle): Promise<number> {
  return Number((await suite.env.query(jobDb.database, 'SELECT COUNT(*) AS n FROM leases'))[0].n);
}

/**
 * A director process with a new active JobDB; it takes an unheld active one (this one, or one
 * a stopped director released), seen as a new lease.
 */
async function startDirector(label: string): Promise<DirectorProc> {
  await suite.env.provision(label);
  const before = new Map<JobDbHandle, number>();
  for (const j of suite.env.provisioned) before.set(j, await leases(j));
  const proc = await suite.env.directorProcess(
    testSettings(suite.env.prefix),
    [{ id: 'hook', url: `${suite.sink.url}/hook`, maxConcurrency: 20 }],
    ['web'],
  );
  let jobDb: JobDbHandle | undefined;
  await waitFor(async () => {
    for (const [j, n] of before) if ((await leases(j)) > n) jobDb = j;
    return jobDb !== undefined;
  }, 30_000);
  return { ...proc, jobDb: jobDb! };
}

const jobs = (prefix: string, n: number) => testJobs(n, `${prefix}-`);

/** messageId → how many of the JobDBs hold it. */
async function copies(prefix: string, jobDbs: JobDbHandle[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const j of jobDbs) {
    const rows = await suite.env.query(j.database, 'SELECT message_id FROM jobs WHERE message_id LIKE ?', [`${prefix}-%`]);
    for (const r of rows) out.set(String(r.message_id), (out.get(String(r.message_id)) ?? 0) + 1);
  }
  return out;
}

async function storedIn(jobDb: JobDbHandle, prefix: string): Promise<number> {
  const [{ n }] = await suite.env.query(jobDb.database, 'SELECT COUNT(*) AS n FROM jobs WHERE message_id LIKE ?', [`${prefix}-%`]);
  return Number(n);
}

let a: DirectorProc;
let b: DirectorProc;

it('URL list: batches go to both directors, every job is stored once, results in the caller order', async () => {
  a = await startDirector('rca');
  b = await startDirector('rcb');
  const config = directorRpcClientSchema.parse({
    DIRECTOR_RPC_URLS: `${a.url},${b.url}`,
    DIRECTOR_RPC_MAX_BATCH_JOBS: '50',
    DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN,
  });
  const client = await createDirectorRpcClient(config, logger);
  try {
    const input = jobs('spread', 1_000);
    // Lone surrogates: rejected per job by the JobDB, at known places in different batches.
    // ... and a destination not in the workspace (rejected per job at the RPC).
    const bad = [7, 123, 555, 999];
    for (const i of bad) input[i].payload = { type: 'track', messageId: input[i].messageId, event: `x\ud800${i}` };
    const unknown = [0, 321];
    for (const i of unknown) input[i].destinationId = 'nope';
    const results = await client.send(input);
    expect(results).toHaveLength(1_000);
    const rejected = results.flatMap((r, i) =>
      r.status === 'rejected' ? [[i, /unknown_destination/.test(r.error) ? 'unknown' : 'bad']] : [],
    );
    expect(rejected).toEqual(
      [...bad.map((i) => [i, 'bad']), ...unknown.map((i) => [i, 'unknown'])].sort((x, y) => Number(x[0]) - Number(y[0])),
    );
    expect(results.filter((r) => r.status === 'stored')).toHaveLength(994);
    const [inA, inB] = [await storedIn(a.jobDb, 'spread'), await storedIn(b.jobDb, 'spread')];
    expect(inA).toBeGreaterThan(0);
    expect(inB).toBeGreaterThan(0);
    const held = await copies('spread', [a.jobDb, b.jobDb]);
    expect(held.size).toBe(994);
    expect([...held.values()].every((n) => n === 1)).toBe(true);
  } finally {
    await client.close();
  }
});

it('a wrong or missing token is an error for the caller (401), not retried at another director', async () => {
  for (const token of ['wrong-token-0123456789abcdef', undefined]) {
    const client = new DirectorRpcClient({ discovery: staticDiscovery([a.url, b.url]), logger, token, maxBatchJobs: 50 });
    try {
      const [retries, refused] = [
        metricValue(await registry.metrics(), 'cdp_director_rpc_client_retries_total'),
        metricValue(await registry.metrics(), 'cdp_director_rpc_client_requests_total', { outcome: 'refused' }),
      ];
      const error = await client.send(jobs('unauth', 120)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DirectorRpcRefusedError);
      expect((error as DirectorRpcRefusedError).status).toBe(401);
      expect(metricValue(await registry.metrics(), 'cdp_director_rpc_client_retries_total')).toBe(retries);
      // The first failure stops new batches: at most one per worker was sent.
      expect(
        metricValue(await registry.metrics(), 'cdp_director_rpc_client_requests_total', { outcome: 'refused' }) - refused,
      ).toBeLessThanOrEqual(4);
    } finally {
      await client.close();
    }
  }
  expect((await copies('unauth', [a.jobDb, b.jobDb])).size).toBe(0);
});

/**
 * Sends `n` jobs through `client` and stops `victim` by `signal` once it has stored `after`
 * of them, while the send is still going (the send's retries must then grow).
 */
async function sendAndStop(
  client: DirectorRpcClient,
  prefix: string,
  n: number,
  victim: DirectorProc,
  signal: 'SIGTERM' | 'SIGKILL',
  after: number,
) {
  const retriesBefore = metricValue(await registry.metrics(), 'cdp_director_rpc_client_retries_total');
  let settled = false;
  const sending = client.send(jobs(prefix, n)).finally(() => {
    settled = true;
  });
  await waitFor(async () => settled || (await storedIn(victim.jobDb, prefix)) >= after, 30_000, 20);
  expect(settled).toBe(false); // stopped mid-send
  await victim.kill(signal);
  const results: JobResult[] = await sending;
  const retries = metricValue(await registry.metrics(), 'cdp_director_rpc_client_retries_total') - retriesBefore;
  return { results, retries };
}

it('SIGTERM of one director mid-send: its batches go to the other, every job stored exactly once over the JobDBs', async () => {
  const client = new DirectorRpcClient({
    discovery: staticDiscovery([a.url, b.url]),
    logger,
    token: TEST_RPC_TOKEN,
    maxBatchJobs: 50,
    concurrency: 2,
    backoffBaseMs: 20,
    cooldownMs: 600_000,
  });
  try {
    const { results, retries } = await sendAndStop(client, 'term', 4_000, a, 'SIGTERM', 400);
    expect(results).toHaveLength(4_000);
    expect(results.every((r) => r.status === 'stored')).toBe(true);
    // Only the batches in flight at A when it stopped failed there: after a failure A gets no
    // new batch during the cooldown (longer than this test).
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(2);
    const held = await copies('term', [a.jobDb, b.jobDb]);
    expect(held.size).toBe(4_000);
    expect([...held.entries()].filter(([, count]) => count !== 1)).toEqual([]);
    expect(await storedIn(b.jobDb, 'term')).toBeGreaterThan(4_000 / 2);
  } finally {
    await client.close();
  }
});

it('SIGKILL of one director mid-send: the send completes at the other; only batches in flight at the kill can be in both JobDBs', async () => {
  const c = await startDirector('rcc');
  const batch = 50;
  const concurrency = 2;
  const client = new DirectorRpcClient({
    discovery: staticDiscovery([b.url, c.url]),
    logger,
    token: TEST_RPC_TOKEN,
    maxBatchJobs: batch,
    concurrency,
    backoffBaseMs: 20,
    cooldownMs: 600_000,
  });
  try {
    const { results, retries } = await sendAndStop(client, 'kill', 4_000, c, 'SIGKILL', 400);
    expect(results).toHaveLength(4_000);
    // A batch C committed but could not answer is stored at B too (answered `stored` there).
    expect(results.every((r) => r.status === 'stored' || r.status === 'duplicate')).toBe(true);
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(concurrency);
    const held = await copies('kill', [b.jobDb, c.jobDb]);
    expect(held.size).toBe(4_000);
    const twice = [...held.values()].filter((count) => count === 2).length;
    expect(twice).toBeLessThanOrEqual(batch * concurrency);
  } finally {
    await client.close();
  }
});
