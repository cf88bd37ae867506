// The client's failure handling against scripted HTTP servers on 127.0.0.1 (a director cannot be
// made to hang or to answer 413 on demand); real directors: services/director/src/rpc-client.int.test.ts.
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { HttpSink, metricValue, sleep, type SinkAnswer } from '@cdp/testkit';
import { DirectorRpcClient, DirectorRpcRefusedError, DirectorsUnavailableError } from './client';
import { RPC_JOBS_PATH, type RpcAnswer } from './contract';
import { staticDiscovery } from './discovery';

const logger = createLogger({ name: 'rpc-client-test', level: 'silent' });

type Behaviour = 'hang' | 'unavailable' | 'store' | 'too_large';

interface Scripted {
  url: string;
  /** First messageId of every batch that arrived, in order. */
  readonly batches: string[];
  /** Requests whose connection the client closed before an answer. */
  readonly abandoned: number;
  close(): Promise<void>;
}

function answer(behaviour: Behaviour, body: string): SinkAnswer | 'hang' {
  if (behaviour === 'hang') return 'hang';
  if (behaviour === 'unavailable') return { status: 503, body: '{"error":{"code":"no_active_jobdb","message":"x"}}' };
  if (behaviour === 'too_large') return { status: 413, body: '{"error":{"code":"batch_too_large","message":"x"}}' };
  const { jobs } = JSON.parse(body) as { jobs: Array<{ messageId: string }> };
  const stored: RpcAnswer = {
    accepted: jobs.length,
    stored: jobs.length,
    duplicates: 0,
    rejected: 0,
    results: jobs.map((j, index) => (j.messageId.endsWith('-dup') ? { index, status: 'duplicate' } : { index, status: 'stored' })),
  };
  return { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(stored) };
}

async function scripted(behaviour: Behaviour): Promise<Scripted> {
  const sink = await new HttpSink().route(RPC_JOBS_PATH, (req) => answer(behaviour, req.body)).start();
  return {
    url: sink.url,
    get batches() {
      return sink.requests.map((r) => (JSON.parse(r.body) as { jobs: Array<{ messageId: string }> }).jobs[0].messageId);
    },
    get abandoned() {
      return sink.closedUnanswered(RPC_JOBS_PATH);
    },
    close: () => sink.close(),
  };
}

function jobs(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    sourceId: 'web',
    messageId: `${prefix}-${i}${i % 7 === 3 ? '-dup' : ''}`,
    destinationId: 'hook',
    subscriptionId: 'default',
    payload: { type: 'track', i },
  }));
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  return metricValue(await registry.metrics(), name, labels);
}

const servers: Scripted[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

async function start(...behaviours: Behaviour[]): Promise<Scripted[]> {
  const started = await Promise.all(behaviours.map(scripted));
  servers.push(...started);
  return started;
}

it('a hanging director (timeout) and a 503 one: every batch ends at the healthy one, once, with per-job results in order', async () => {
  const [hang, busy, good] = await start('hang', 'unavailable', 'store');
  const client = new DirectorRpcClient({
    discovery: staticDiscovery([hang.url, busy.url, good.url]),
    logger,
    maxBatchJobs: 10,
    concurrency: 3,
    timeoutMs: 300,
    backoffBaseMs: 10,
    backoffCapMs: 50,
  });
  const before = {
    timeout: await metric('cdp_director_rpc_client_requests_total', { outcome: 'timeout' }),
    unavailable: await metric('cdp_director_rpc_client_requests_total', { outcome: 'unavailable' }),
  };
  try {
    const input = jobs('t', 95);
    const results = await client.send(input);
    expect(results.map((r) => r.status)).toEqual(input.map((j) => (j.messageId.endsWith('-dup') ? 'duplicate' : 'stored')));
    // 10 batches; each reached the healthy director exactly once.
    expect([...good.batches].sort()).toEqual(Array.from({ length: 10 }, (_, i) => input[i * 10].messageId).sort());
    expect(hang.batches.length).toBeGreaterThan(0);
    expect(busy.batches.length).toBeGreaterThan(0);
    // Every timed-out call was abandoned: its connection closed (seen by the server a moment later).
    for (let i = 0; i < 200 && hang.abandoned < hang.batches.length; i++) await sleep(10);
    expect(hang.abandoned).toBe(hang.batches.length);
    expect((await metric('cdp_director_rpc_client_requests_total', { outcome: 'timeout' })) - before.timeout).toBe(hang.batches.length);
    expect((await metric('cdp_director_rpc_client_requests_total', { outcome: 'unavailable' })) - before.unavailable).toBe(
      busy.batches.length,
    );
  } finally {
    await client.close();
  }
});

it('only unavailable directors: bounded attempts, then DirectorsUnavailableError', async () => {
  const [busy1, busy2] = await start('unavailable', 'unavailable');
  const client = new DirectorRpcClient({
    discovery: staticDiscovery([busy1.url, busy2.url]),
    logger,
    maxAttempts: 4,
    backoffBaseMs: 5,
    concurrency: 1,
  });
  try {
    const error = await client.send(jobs('u', 5)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DirectorsUnavailableError);
    expect(busy1.batches.length + busy2.batches.length).toBe(4);
    // Alternates: never twice in a row at the one that just failed while the other is there.
    expect(busy1.batches.length).toBe(2);
  } finally {
    await client.close();
  }
});

it('413 is the caller’s error: not sent to another director', async () => {
  const [tooLarge, good] = await start('too_large', 'store');
  // random() = 0: round robin starts at the first director.
  const client = new DirectorRpcClient({ discovery: staticDiscovery([tooLarge.url, good.url]), logger, random: () => 0, concurrency: 1 });
  try {
    const error = await client.send(jobs('l', 5)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DirectorRpcRefusedError);
    expect((error as DirectorRpcRefusedError).status).toBe(413);
    expect(tooLarge.batches).toHaveLength(1);
    expect(good.batches).toHaveLength(0);
  } finally {
    await client.close();
  }
});

it('no director known yet (DNS not answering): the client asks discovery to look again, and sends once it has one', async () => {
  const [good] = await start('store');
  let lookups = 0;
  let known: string[] = [];
  const discovery = {
    directors: () => known,
    stop: () => undefined,
    unreachable: () => {
      lookups++;
      if (lookups === 2) known = [good.url];
    },
  };
  const client = new DirectorRpcClient({ discovery, logger, backoffBaseMs: 5, maxAttempts: 4 });
  try {
    const results = await client.send(jobs('n', 3));
    expect(results.map((r) => r.status)).toEqual(['stored', 'stored', 'stored']);
    expect(lookups).toBe(2);
    expect(good.batches).toEqual(['n-0']);
  } finally {
    await client.close();
  }
});
