import crypto from 'node:crypto';
import { undeliveredSchema } from '@cdp/events';
import type { HttpSink } from '@cdp/testkit';
import {
  historyOf,
  MemoryPublisher,
  postJobs,
  rpcHeaders,
  TEST_RPC_TOKEN,
  TestEnv,
  testJob,
  testSettings,
  testWorkspace,
  useDirectorSuite,
  waitFor,
} from './testing/harness';
import type { Director } from './service';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let director: Director;
let database: string;
const publisher = new MemoryPublisher();
process.env.DIRECTOR_TEST_HMAC = 'shh-secret';

const FINAL = new Set(['succeeded', 'discarded', 'archived']);

const job = (messageId: string, destinationId: string, extra: Record<string, unknown> = {}) =>
  testJob(messageId, destinationId, { payload: { type: 'track', messageId, event: 'Order Completed', properties: { n: 1 } }, ...extra });

beforeAll(async () => {
  ({ env, sink } = suite);
  sink.route('/ok', () => ({ status: 200, body: 'fine' }));
  sink.route('/bad', () => ({ status: 422, body: '{"error":"unprocessable"}' }));
  sink.route('/unauth', () => ({ status: 401, body: 'who are you' }));
  sink.route('/flaky', (_r, n) => (n === 1 ? { status: 503, body: 'busy' } : { status: 200 }));
  sink.route('/slowdown', (_r, n) => (n === 1 ? { status: 408 } : { status: 204 }));
  sink.route('/ra-seconds', (_r, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
  sink.route('/ra-date', (_r, n) =>
    n === 1 ? { status: 503, headers: { 'retry-after': new Date(Date.now() + 2_000).toUTCString() } } : { status: 200 },
  );
  sink.route('/hang', (_r, n) => (n === 1 ? 'hang' : { status: 200 }));
  sink.route('/reset', (_r, n) => (n === 1 ? 'reset' : { status: 200 }));
  sink.route('/down', () => ({ status: 500, body: 'always down' }));
  const refused = 'http://127.0.0.1:1/nothing-listens';
  const ws = testWorkspace([
    { id: 'ok', url: `${sink.url}/ok`, hmacSecretEnv: 'DIRECTOR_TEST_HMAC', headers: { 'X-Team': 'growth' } },
    { id: 'bad', url: `${sink.url}/bad` },
    { id: 'unauth', url: `${sink.url}/unauth` },
    { id: 'flaky', url: `${sink.url}/flaky` },
    { id: 'slowdown', url: `${sink.url}/slowdown` },
    { id: 'raseconds', url: `${sink.url}/ra-seconds` },
    { id: 'radate', url: `${sink.url}/ra-date` },
    { id: 'hang', url: `${sink.url}/hang`, timeoutMs: 300 },
    { id: 'refused', url: refused },
    { id: 'reset', url: `${sink.url}/reset` },
    { id: 'down', url: `${sink.url}/down` },
  ]);
  const jdb = await env.provision('out');
  database = jdb.database;
  director = env.director(testSettings(env.prefix), { workspace: () => ws, publisher });
  await director.start();
  await waitFor(() => director.isReady);
});

describe('director delivery over a real JobDB', () => {
  it('answers 400 on a malformed batch', async () => {
    expect((await postJobs(director.url!, [{ sourceId: 'web' }])).status).toBe(400);
    const res = await fetch(`${director.url}/v1/jobs`, { method: 'POST', headers: rpcHeaders(TEST_RPC_TOKEN), body: '{nope' });
    expect(res.status).toBe(400);
  });

  it('applies every row of the outcome table and persists each transition', async () => {
    const soon = new Date(Date.now() + 1_500).toISOString();
    const jobs = [
      job('m-ok', 'ok', { headers: { 'x-cdp-trace': 't1' } }),
      job('m-bad', 'bad'),
      job('m-unauth', 'unauth'),
      job('m-flaky', 'flaky'),
      job('m-408', 'slowdown'),
      job('m-ra-s', 'raseconds'),
      job('m-ra-d', 'radate'),
      job('m-hang', 'hang'),
      job('m-reset', 'reset'),
      job('m-refused', 'refused', { expiresAt: new Date(Date.now() + 60_000).toISOString() }),
      job('m-down', 'down', { expiresAt: soon }),
    ];
    const res = await postJobs(director.url!, jobs);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ stored: jobs.length, duplicates: 0 });
    // The same batch again: idempotency keys already stored.
    expect((await postJobs(director.url!, jobs)).body).toMatchObject({ stored: 0, duplicates: jobs.length });

    let history!: Awaited<ReturnType<typeof historyOf>>;
    const byMessage = () => new Map([...history.values()].map((h) => [h.messageId, h]));
    await waitFor(async () => {
      history = await historyOf(env, database);
      const m = byMessage();
      const refused = m.get('m-refused');
      return (
        [...m.entries()].every(([id, h]) => id === 'm-refused' || FINAL.has(h.states.at(-1) ?? '')) && (refused?.states.length ?? 0) >= 4
      );
    }, 30_000);
    const m = byMessage();
    expect(m.get('m-ok')!.states).toEqual(['executing', 'succeeded']);
    expect(m.get('m-bad')!.states).toEqual(['executing', 'discarded']);
    expect(m.get('m-bad')!.rows[1].response_excerpt).toBe('{"error":"unprocessable"}');
    expect(m.get('m-bad')!.rows[1].http_status).toBe(422);
    expect(m.get('m-unauth')!.states).toEqual(['executing', 'discarded']);
    for (const id of ['m-flaky', 'm-408', 'm-ra-s', 'm-ra-d', 'm-hang', 'm-reset']) {
      expect(m.get(id)!.states).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
    }
    expect(m.get('m-hang')!.rows[1].error).toMatch(/^timeout/);
    expect(m.get('m-reset')!.rows[1].error).toMatch(/^(connection_reset|network)/);
    expect(m.get('m-refused')!.rows[1].error).toMatch(/^connection_refused/);
    expect(m.get('m-refused')!.states.slice(0, 4)).toEqual(['executing', 'awaiting_retry', 'executing', 'awaiting_retry']);
    expect(m.get('m-down')!.states.slice(-2)).toEqual(['archiving', 'archived']);

    // Backoff bounds: base 100 ms, cap 400 ms, full jitter.
    for (const h of history.values()) {
      for (const row of h.rows) {
        if (row.to_state !== 'awaiting_retry' || row.error?.startsWith('interrupted')) continue;
        const delay = new Date(row.next_retry_at).getTime() - new Date(row.at).getTime();
        const attempt = Number(row.attempt);
        if (h.messageId === 'm-ra-s' || h.messageId === 'm-ra-d') continue;
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(Math.min(400, 100 * 2 ** (attempt - 1)));
      }
    }
    // Retry-After (1 s as seconds, ~2 s as an HTTP date) won over the ≤ 100 ms backoff.
    const gap = (id: string) => {
      const rows = m.get(id)!.rows;
      return new Date(rows[1].next_retry_at).getTime() - new Date(rows[1].at).getTime();
    };
    expect(gap('m-ra-s')).toBeGreaterThanOrEqual(1_000);
    expect(gap('m-ra-d')).toBeGreaterThanOrEqual(900);
    const secondRa = sink.requests.filter((r) => r.path === '/ra-seconds');
    expect(secondRa[1].at - secondRa[0].at).toBeGreaterThanOrEqual(950);

    // The webhook request: method, headers, payload, HMAC over the exact body.
    const okReq = sink.requests.find((r) => r.path === '/ok')!;
    expect(okReq.method).toBe('POST');
    expect(okReq.headers['x-team']).toBe('growth');
    expect(okReq.headers['x-cdp-trace']).toBe('t1');
    expect(JSON.parse(okReq.body)).toMatchObject({ messageId: 'm-ok', event: 'Order Completed' });
    const mac = crypto.createHmac('sha256', 'shh-secret').update(okReq.body).digest('hex');
    expect(okReq.headers['x-signature']).toBe(`sha256=${mac}`);

    // Expiry → cdp.undelivered with the last error.
    const record = publisher.records.map((r) => JSON.parse(r.value)).find((r) => r.messageId === 'm-down');
    expect(record).toBeDefined();
    expect(undeliveredSchema.safeParse(record).success).toBe(true);
    expect(record).toMatchObject({ destinationId: 'down', lastStatus: 500, lastError: 'HTTP 500', lastResponseExcerpt: 'always down' });
    expect(record.attempts).toBeGreaterThanOrEqual(2);
    expect(publisher.records.find((r) => JSON.parse(r.value).messageId === 'm-down')!.key).toBe('web:down');
  });

  it('writes per-minute delivery stats to cdp_control on flush', async () => {
    await director.flushStats(true);
    const rows = await env.query(testSettingsDb(director), 'SELECT * FROM delivery_stats');
    const ok = rows.find((r) => r.destination_id === 'ok');
    expect(ok).toBeDefined();
    expect(Number(ok!.succeeded)).toBe(1);
    const bad = rows.find((r) => r.destination_id === 'bad')!;
    expect(JSON.parse(bad.failures)[0]).toMatchObject({ status: 422 });
  });
});

function testSettingsDb(d: Director): string {
  return (d as unknown as { settings: { CDP_CONTROL_DB: string } }).settings.CDP_CONTROL_DB;
}
