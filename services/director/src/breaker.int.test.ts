// Circuit breaker with half-open probes and the adaptive rate on 429, against real sinks.
// Timing checks are lower bounds only (a breaker can never reopen sooner than its period).
import type { HttpSink } from '@cdp/testkit';
import type { Director } from './service';
import { historyOf, postJobs, TestEnv, testJobs, testSettings, testWorkspace, useDirectorSuite, waitFor } from './testing/harness';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let director: Director;
let database: string;

beforeAll(async () => {
  ({ env, sink } = suite);
  // 20 failures open the breaker (500 ms); the first probe fails too (reopens for 1 s); then healthy.
  sink.route('/flap', (_r, n) => (n <= 21 ? { status: 500 } : { status: 200 }));
  sink.route('/throttle', (_r, n) => (n <= 30 ? { status: 429 } : { status: 200 }));
  const ws = testWorkspace([
    { id: 'flap', url: `${sink.url}/flap`, maxConcurrency: 1 },
    { id: 'throttle', url: `${sink.url}/throttle`, maxConcurrency: 20 },
    { id: 'wide', url: `${sink.url}/wide`, maxConcurrency: 10 },
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

describe('flow control', () => {
  it('opens the circuit after consecutive failures, probes one request at a time, closes on success', async () => {
    expect((await postJobs(director.url!, testJobs(40, 'flap-', { destinationId: 'flap' }))).status).toBe(200);
    await waitFor(
      async () =>
        [...(await historyOf(env, database)).values()].filter((h) => h.messageId.startsWith('flap-') && h.states.at(-1) === 'succeeded')
          .length === 40,
      30_000,
    );
    const at = sink.requests.filter((r) => r.path === '/flap').map((r) => r.at);
    expect(at.length).toBeGreaterThanOrEqual(40 + 21);
    expect(at[20] - at[19]).toBeGreaterThanOrEqual(450); // open period before the first probe
    expect(at[21] - at[20]).toBeGreaterThanOrEqual(900); // failed probe: open twice as long
  });

  it('lowers a destination rate on 429 and still delivers everything', async () => {
    const q = () => director.engine.scheduler.destinations.get('throttle');
    expect((await postJobs(director.url!, testJobs(100, 'throttle-', { destinationId: 'throttle' }))).status).toBe(200);
    await waitFor(() => q()?.adaptive.value !== undefined, 10_000, 5);
    const lowered = q()!.adaptive.value!;
    expect(lowered).toBeGreaterThan(0);
    await waitFor(
      async () =>
        [...(await historyOf(env, database)).values()].filter((h) => h.messageId.startsWith('throttle-') && h.states.at(-1) === 'succeeded')
          .length === 100,
      30_000,
    );
  });

  it('with concurrency above 1, late answers to calls sent before the circuit opened neither close nor reopen it', async () => {
    // Five calls answered late with 200, sent before the circuit opens; every other call fails.
    sink.route('/wide', (r) =>
      (JSON.parse(r.body) as { messageId: string }).messageId.startsWith('wide-slow')
        ? { status: 200, delayMs: 1_000 }
        : { status: 500, delayMs: 20 },
    );
    const wide = () => sink.requests.filter((r) => r.path === '/wide');
    const slow = () => wide().filter((r) => r.body.includes('wide-slow'));
    const breaker = () => director.engine.scheduler.destinations.get('wide')?.breaker;
    expect((await postJobs(director.url!, testJobs(5, 'wide-slow-', { destinationId: 'wide' }))).status).toBe(200);
    await waitFor(() => slow().length === 5, 10_000, 5);
    expect((await postJobs(director.url!, testJobs(60, 'wide-', { destinationId: 'wide' }))).status).toBe(200);
    await waitFor(() => breaker()?.state(Date.now()) === 'open', 10_000, 5);
    expect(slow().every((r) => r.answeredAt === undefined)).toBe(true); // still in flight when it opened
    await waitFor(() => slow().every((r) => r.answeredAt !== undefined), 10_000, 5);
    const lastLate = Math.max(...slow().map((r) => r.answeredAt!));
    // After the late successes only probes go, one at a time (a closed circuit would let ten go at once).
    await waitFor(() => wide().filter((r) => r.at >= lastLate).length >= 2, 15_000);
    const after = wide().filter((r) => r.at >= lastLate);
    expect(after.map((r) => r.concurrent)).toEqual(after.map(() => 0));
    expect(breaker()!.state(Date.now())).not.toBe('closed');
  });
});
