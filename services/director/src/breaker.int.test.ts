// Circuit breaker with half-open probes and the adaptive rate on 429, against real sinks.
// Timing checks are lower bounds only (a breaker can never reopen sooner than its period).
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import type { Director } from './service';
import { historyOf, postJobs, Sink, testSettings, testWorkspace, TestEnv, waitFor } from './testing/harness';

let consulServer: ConsulDevServer;
let env: TestEnv;
let sink: Sink;
let director: Director;
let database: string;

function jobs(n: number, destinationId: string) {
  return Array.from({ length: n }, (_, i) => ({
    sourceId: 'web',
    messageId: `${destinationId}-${i}`,
    destinationId,
    subscriptionId: 'default',
    payload: { type: 'track', messageId: `${destinationId}-${i}`, event: 'E' },
  }));
}

beforeAll(async () => {
  consulServer = await startConsulDevServer({ minTtlMs: 500, ttlMultiplier: 1 });
  env = new TestEnv(consulServer.url);
  sink = new Sink();
  // 20 failures open the breaker (500 ms); the first probe fails too (reopens for 1 s); then healthy.
  sink.route('/flap', (_r, n) => (n <= 21 ? { status: 500 } : { status: 200 }));
  sink.route('/throttle', (_r, n) => (n <= 30 ? { status: 429 } : { status: 200 }));
  await sink.start();
  const ws = testWorkspace([
    { id: 'flap', url: `${sink.url}/flap`, maxConcurrency: 1 },
    { id: 'throttle', url: `${sink.url}/throttle`, maxConcurrency: 20 },
  ]);
  database = (await env.provision('brk')).database;
  director = env.director(
    testSettings(env.prefix, {
      DIRECTOR_BREAKER_FAILURES: 20,
      DIRECTOR_BREAKER_OPEN_MS: 500,
      DIRECTOR_BREAKER_MAX_OPEN_MS: 5_000,
      DIRECTOR_BACKOFF_BASE_MS: 50,
      DIRECTOR_BACKOFF_CAP_MS: 100,
    }),
    { workspace: () => ws },
  );
  await director.start();
  await waitFor(() => director.isReady);
});

afterAll(async () => {
  await env.cleanup();
  await sink.close();
  await consulServer.close();
});

describe('flow control', () => {
  it('opens the circuit after consecutive failures, probes one request at a time, closes on success', async () => {
    expect((await postJobs(director.url!, jobs(40, 'flap'))).status).toBe(200);
    await waitFor(async () => [...(await historyOf(env, database)).values()].filter((h) => h.messageId.startsWith('flap-') && h.states.at(-1) === 'succeeded').length === 40, 30_000);
    const at = sink.requests.filter((r) => r.path === '/flap').map((r) => r.at);
    expect(at.length).toBeGreaterThanOrEqual(40 + 21);
    expect(at[20] - at[19]).toBeGreaterThanOrEqual(450); // open period before the first probe
    expect(at[21] - at[20]).toBeGreaterThanOrEqual(900); // failed probe: open twice as long
  });

  it('lowers a destination rate on 429 and still delivers everything', async () => {
    const q = () => director.engine.scheduler.destinations.get('throttle');
    expect((await postJobs(director.url!, jobs(100, 'throttle'))).status).toBe(200);
    await waitFor(() => q()?.adaptive.value !== undefined, 10_000, 5);
    const lowered = q()!.adaptive.value!;
    expect(lowered).toBeGreaterThan(0);
    await waitFor(async () => [...(await historyOf(env, database)).values()].filter((h) => h.messageId.startsWith('throttle-') && h.states.at(-1) === 'succeeded').length === 100, 30_000);
  });
});
