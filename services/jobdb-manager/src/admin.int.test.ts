// The admin API and the Event Delivery page over a scripted scenario: jobdb-manager as its
// service (startService: migrations, election, admin server) and a real director in this
// process, MariaDB, the Consul dev server and an HttpSink answering 200, 503-then-200, 400/422
// and 500. The page is checked in Debian's Chromium (libs/testkit launchChromium) after the
// JobDBs that held the scenario's jobs were rotated, drained and dropped.
import { ConsulKeys } from '@cdp/consul';
import { listJobDbs } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { startService, type BuiltService, type RunningService } from '@cdp/service';
import { freePort, launchChromium, saveScreenshot, sleep, waitFor, type LaunchedChromium } from '@cdp/testkit';
import { postJobs, testJobs, testSettings, testWorkspace, useDirectorSuite } from '@cdp/director/src/testing/harness';
import type { Director } from '@cdp/director/src/service';
import type { Page } from 'playwright-core';
import { jobDbManager } from './build';
import { managerEnv } from './config';
import {
  dropManagedDatabases,
  managedDatabases,
  managerProcessEnv,
  TEST_ADMIN_TOKEN,
  testManagerSettings,
} from './testing/manager-harness';

const suite = useDirectorSuite();
const logger = createLogger({ name: 'jobdb-manager-admin-test', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' });
const auth = { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('jobdb-manager admin API and Event Delivery page', () => {
  let settings: ReturnType<typeof testManagerSettings>;
  let keys: ConsulKeys;
  let manager: RunningService<BuiltService>;
  let director: Director;
  let admin: string;
  let chromium: LaunchedChromium | undefined;
  /** Attempts the sink answered 503 (flaky's first) and 500 (gone's every). */
  const firstSeen = new Set<string>();

  async function get(path: string): Promise<Json> {
    const res = await fetch(`${admin}${path}`, { headers: auth });
    const body = (await res.json()) as Json;
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${JSON.stringify(body)}`);
    return body.data as Json;
  }

  /** Posts a batch, sent again while the director answers 503 (it is switching JobDBs: rotation every 3 s); the last status. */
  async function post(jobs: unknown[]): Promise<number> {
    let status = 0;
    for (let i = 0; i < 100; i++) {
      status = (await postJobs(director.url!, jobs)).status;
      if (status !== 503) return status;
      await sleep(100);
    }
    return status;
  }

  const destination = (id: string) => get(`/v1/delivery/destinations/${id}?minutes=30`);

  beforeAll(async () => {
    const prefix = `${suite.env.prefix}adm/`;
    keys = new ConsulKeys(prefix);
    // Rotation every 3 s: the scenario's JobDBs are drained and dropped within the test.
    settings = testManagerSettings(prefix, { JOBDB_ROTATION_PERIOD_MS: 3_000 });
    const adminPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    const config = managerEnv.parse({ ...managerProcessEnv(settings, suite.consul.url, adminPort), OPS_PORT: '0', LOG_LEVEL: 'silent' });
    manager = await startService(jobDbManager, config, { logger });

    suite.sink.route('/flaky', (req) => {
      const id = /"messageId":"([^"]+)"/.exec(req.body)?.[1] ?? '';
      if (firstSeen.has(id)) return { status: 200 };
      firstSeen.add(id);
      return { status: 503, body: 'busy, try later' };
    });
    suite.sink.route('/bad', (req) =>
      req.body.includes('"bad-4"') || req.body.includes('"bad-5"')
        ? { status: 422, body: '{"error":"unprocessable"}' }
        : { status: 400, body: '{"error":"bad field: userId"}' },
    );
    suite.sink.route('/gone', () => ({ status: 500, body: 'down for maintenance' }));
    const ws = testWorkspace(['ok', 'flaky', 'bad', 'gone', 'other'].map((id) => ({ id, url: `${suite.sink.url}/${id}` })));
    director = suite.env.director(
      testSettings(prefix, {
        POD_NAME: 'adm-d1',
        CDP_CONTROL_DB: settings.CDP_CONTROL_DB,
        DIRECTOR_STATS_INTERVAL_MS: 300,
      }),
      { workspace: () => ws },
    );
    await director.start();
    await waitFor(() => director.isReady, 20_000);
  }, 60_000);

  afterAll(async () => {
    await chromium?.close();
    await director?.stop();
    await manager?.stop();
    if (settings) await dropManagedDatabases(settings);
  });

  it('counts a scripted scenario per destination: delivered, retrying, discarded and expired with their status codes', async () => {
    const expiresAt = new Date(Date.now() + 3_000).toISOString();
    const batches = [
      testJobs(20, 'ok-', { destinationId: 'ok' }),
      testJobs(10, 'flaky-', { destinationId: 'flaky' }),
      testJobs(6, 'bad-', { destinationId: 'bad' }),
      testJobs(3, 'gone-', { destinationId: 'gone', extra: { expiresAt } }),
    ];
    for (const jobs of batches) expect(await post(jobs)).toBe(200);

    await waitFor(async () => (await destination('gone')).lastHour.expired === 3, 20_000, 250);
    await waitFor(async () => (await destination('flaky')).lastHour.delivered === 10, 20_000, 250);
    await waitFor(async () => (await destination('ok')).lastHour.delivered === 20, 20_000, 250);
    await waitFor(async () => (await destination('bad')).lastHour.discarded === 6, 20_000, 250);

    const ok = await destination('ok');
    expect(ok.lastHour).toMatchObject({ delivered: 20, retrying: 0, discarded: 0, expired: 0, statusCodes: [] });
    expect(ok.lastHour.latency.samples).toBe(20);
    expect(ok.lastHour.latency.p50Ms).toBeGreaterThan(0);
    expect(ok.perMinute.reduce((n: number, p: Json) => n + p.delivered, 0)).toBe(20);

    const flaky = await destination('flaky');
    expect(flaky.lastHour).toMatchObject({ delivered: 10, retrying: 10, discarded: 0, expired: 0 });
    expect(flaky.lastHour.statusCodes).toEqual([{ outcome: 'retried', status: 503, count: 10 }]);

    const bad = await destination('bad');
    expect(bad.lastHour).toMatchObject({ delivered: 0, retrying: 0, discarded: 6, expired: 0 });
    expect(bad.lastHour.statusCodes).toEqual([
      { outcome: 'discarded', status: 400, count: 4 },
      { outcome: 'discarded', status: 422, count: 2 },
    ]);

    // Every attempt at `gone` failed with 500 until the jobs expired: each one is a retry.
    const gone = await destination('gone');
    const goneAttempts = suite.sink.count('/gone');
    expect(gone.lastHour).toMatchObject({ delivered: 0, retrying: goneAttempts, discarded: 0, expired: 3 });
    // (On a loaded machine the jobs may expire before any attempt: then there is no code.)
    expect(gone.lastHour.statusCodes).toEqual(goneAttempts === 0 ? [] : [{ outcome: 'retried', status: 500, count: goneAttempts }]);

    // The latest failures keep the status and the response's start.
    const failures = (await get('/v1/delivery/destinations/bad/failures?limit=3')) as Json;
    expect(failures.failures).toHaveLength(3);
    const all: Json[] = [];
    let next = '';
    do {
      const res = await fetch(`${admin}/v1/delivery/destinations/bad/failures?limit=2${next ? `&next=${next}` : ''}`, { headers: auth });
      const body = (await res.json()) as Json;
      all.push(...body.data.failures);
      next = body.cursor.next;
    } while (next);
    // ≤ 5 samples per stats row; 6 discards may span one or more rows.
    expect(all.length).toBeGreaterThanOrEqual(5);
    expect(all.length).toBeLessThanOrEqual(6);
    // Pages of 2 chain to the same list as one page of all.
    expect(all).toEqual(((await get('/v1/delivery/destinations/bad/failures?limit=100')) as Json).failures);
    expect(all.every((f) => f.outcome === 'discarded' && (f.status === 400 || f.status === 422))).toBe(true);
    expect(all.find((f) => f.status === 400)).toMatchObject({ outcome: 'discarded', sourceId: 'web', director: 'adm-d1' });
    expect(all.find((f) => f.status === 400)!.responseExcerpt).toContain('bad field: userId');

    const overview = await get('/v1/delivery');
    const pairOf = (id: string) => overview.destinations.find((d: Json) => d.destinationId === id).pairs[0];
    expect(pairOf('ok')).toMatchObject({ sourceId: 'web', lastHour: { delivered: 20 }, lastDay: { delivered: 20 } });
    expect(pairOf('gone').lastDay).toEqual({ delivered: 0, retrying: goneAttempts, discarded: 0, expired: 3 });
  }, 90_000);

  it('lists JobDBs with state, holder, size and age; refuses callers without the token', async () => {
    const { jobdbs } = await get('/v1/jobdbs');
    expect(jobdbs.length).toBeGreaterThanOrEqual(2);
    // Rotation every 3 s: the director holds its active JobDB and may still hold a draining one.
    const held = jobdbs.filter((j: Json) => j.holder !== null);
    expect(held.length).toBeGreaterThanOrEqual(1);
    for (const j of held) {
      expect(['active', 'draining']).toContain(j.state);
      expect(j.holder.name).toBe('director:adm-d1');
      expect(j.bytes).toBeGreaterThan(0);
      expect(j.leases).toBeGreaterThanOrEqual(1);
      expect(typeof j.ageSeconds).toBe('number');
    }
    const page = (await (await fetch(`${admin}/v1/jobdbs?limit=1`, { headers: auth })).json()) as Json;
    expect(page.data.jobdbs).toHaveLength(1);
    expect(page.cursor.has_more).toBe(true);

    const refused = await fetch(`${admin}/v1/jobdbs`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('Basic realm="jobdb-manager admin"');
    expect((await fetch(`${admin}/`)).status).toBe(401);
    const basic = `Basic ${Buffer.from(`${TEST_ADMIN_TOKEN}:`).toString('base64')}`;
    expect((await fetch(`${admin}/v1/jobdbs`, { headers: { Authorization: basic } })).status).toBe(200);
  });

  it('writes destination controls to the key directors watch, check-and-set; bad bodies are 400', async () => {
    const patch = (id: string, body: unknown) =>
      fetch(`${admin}/v1/destinations/${id}/control`, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const res = await patch('other', { priority: 5, rateLimitPerSecond: 50 });
    expect(res.status).toBe(200);
    const stored = await suite.env.consul.kv.get(keys.destinationControl('other'));
    expect(JSON.parse(stored!.Value!)).toEqual({ priority: 5, rateLimitPerSecond: 50 });
    await waitFor(() => director.controls.get('other')?.rateLimitPerSecond === 50, 5_000);
    expect(((await (await patch('other', { rateLimitPerSecond: null })).json()) as Json).data.control).toEqual({ priority: 5 });
    expect(JSON.parse((await suite.env.consul.kv.get(keys.destinationControl('other')))!.Value!)).toEqual({ priority: 5 });

    for (const body of [{ priority: 500 }, { paused: 'yes' }, { rateLimitPerSecond: -1 }, { unknown: 1 }]) {
      const bad = await patch('other', body);
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as Json).error.code).toBe('invalid_request_error');
    }
    expect((await patch('bad id!', {})).status).toBe(400);
    const controls = await get('/v1/destinations');
    expect(controls.destinations).toEqual([{ destinationId: 'other', control: { priority: 5 } }]);
  });

  it('shows the counts in headless Chromium after the JobDBs were dropped; pausing from the page stops deliveries, resuming delivers the backlog', async () => {
    // The JobDBs that held the scenario's jobs: rotated (3 s), drained, dropped.
    const scenarioJobDbs = (await listJobDbs(suite.env.consul, keys)).filter((e) => e.holder !== undefined || e.state !== 'active');
    expect(scenarioJobDbs.length).toBeGreaterThanOrEqual(1);
    await waitFor(
      async () => {
        const ids = new Set((await listJobDbs(suite.env.consul, keys)).map((e) => e.id));
        const databases = new Set(await managedDatabases(settings));
        return scenarioJobDbs.every((e) => !ids.has(e.id) && !databases.has(e.dsnRef));
      },
      30_000,
      250,
    );
    const goneAttempts = suite.sink.count('/gone');

    chromium = await launchChromium();
    // The browser answers the Basic challenge with the token as user name, as a person would at its prompt.
    const page = await chromium.newPage({
      httpCredentials: { username: TEST_ADMIN_TOKEN, password: '' },
      viewport: { width: 1280, height: 900 },
    });
    const answer = await page.goto(`${admin}/`);
    expect(answer?.status()).toBe(200);
    const card = (id: string) => page.locator(`section[data-destination="${id}"]`);
    const field = (id: string, name: string) => card(id).locator(`[data-field="${name}"]`);
    await card('gone').waitFor();

    await expectText(field('ok', 'day-delivered'), '20');
    await expectText(field('flaky', 'hour-delivered'), '10');
    await expectText(field('flaky', 'hour-retrying'), '10');
    await expectText(field('flaky', 'day-retry-codes'), '503 ×10');
    await expectText(field('bad', 'day-discarded'), '6');
    await expectText(field('bad', 'day-discard-codes'), '400 ×4, 422 ×2');
    await expectText(field('gone', 'day-expired'), '3');
    await expectText(field('gone', 'day-retrying'), String(goneAttempts));
    await expectText(field('gone', 'day-retry-codes'), goneAttempts === 0 ? '–' : `500 ×${goneAttempts}`);
    expect(await card('bad').locator('.failures tbody').innerText()).toContain('bad field: userId');
    expect(await card('bad').locator('.failures tbody tr[data-status="422"]').count()).toBeGreaterThanOrEqual(1);
    expect(await card('ok').locator('svg rect.bar-delivered').count()).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#jobdbs tbody tr').count()).toBeGreaterThanOrEqual(2);
    await saveScreenshot(page, 'jobdb-manager-event-delivery');

    // Pause `ok` from the page: its jobs wait while `other` keeps flowing.
    const okBefore = suite.sink.count('/ok');
    await card('ok').locator('button.toggle', { hasText: 'Pause' }).click();
    await card('ok').locator('.badge', { hasText: 'paused' }).waitFor();
    expect(JSON.parse((await suite.env.consul.kv.get(keys.destinationControl('ok')))!.Value!)).toEqual({ paused: true });
    await waitFor(() => director.controls.get('ok')?.paused === true, 5_000);
    expect(await post(testJobs(5, 'ok-paused-', { destinationId: 'ok' }))).toBe(200);
    const otherBefore = suite.sink.count('/other');
    expect(await post(testJobs(3, 'other-', { destinationId: 'other' }))).toBe(200);
    await waitFor(() => suite.sink.count('/other') === otherBefore + 3, 10_000);
    await sleep(1_000);
    expect(suite.sink.count('/ok')).toBe(okBefore);

    await card('ok').locator('button.toggle', { hasText: 'Resume' }).click();
    await card('ok').locator('.badge', { hasText: 'delivering' }).waitFor();
    await waitFor(() => suite.sink.count('/ok') === okBefore + 5, 10_000);
    await expectText(field('ok', 'day-delivered'), '25', 30_000);
    await saveScreenshot(page, 'jobdb-manager-event-delivery-resumed');
    expect(chromium.blocked).toEqual([]);
    expect(chromium.pageErrors).toEqual([]);
  }, 120_000);
});

/** Waits until the element's text is `text` (the page refreshes every 10 s). */
async function expectText(locator: ReturnType<Page['locator']>, text: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await locator.textContent()) ?? '';
    if (seen === text) return;
    await sleep(200);
  }
  throw new Error(`expected ${text}, page shows ${JSON.stringify(seen)}`);
}
