// The whole pipeline as processes — tapi → dedup → identity → transform → director → webhook —
// on the real harness (Kafka, MariaDB, DynamoDB Local, the Consul dev server), with the sample
// workspace delivering to a sample sink, driven by the unchanged Segment Node SDK. Every event
// tapi answered 200 must reach the sink once (also when the client sends its batches twice, as
// a retry after a lost response does), with the fields the client set, tapi's envelope fields,
// the source's transformations applied and the destinations' subscriptions and filters obeyed.
import crypto from 'node:crypto';
import { Analytics } from '@segment/analytics-node';
import { launchChromium, metricValue, sleep, waitFor, type SinkLine } from '@cdp/testkit';
import { startAnalyticsPage } from './testing/analytics-page';
import { listKeys, readObjectLines } from '@cdp/archiver/src/reader';
import { regulationKey, type Regulation, type Undelivered } from '@cdp/events';
import { CHAIN_ADMIN_TOKEN, CHAIN_RETRY_WINDOW_MS, PIPELINE, SAMPLE_HMAC_SECRET, startChain, type Chain } from './testing/chain';

const SERVER_KEY = 'wk_server_sample_0001';
const WEB_KEY = 'wk_web_sample_0001';
/** Events per run (PIPELINE_TEST_EVENTS for a bigger one); the server source's share is sent twice. */
const EVENTS = Number(process.env.PIPELINE_TEST_EVENTS ?? 120);

interface Sent {
  key: string;
  type: 'track' | 'identify';
  messageId: string;
  userId: string;
  event?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context?: Record<string, unknown>;
  timestamp: Date;
}

/** Sends with the SDK (one client per call, as a process that restarts and retries would), failing on any error it reports. */
async function send(tapiUrl: string, events: Sent[]): Promise<void> {
  const analytics = new Analytics({ writeKey: events[0].key, host: tapiUrl, flushAt: 25, maxRetries: 0 });
  const errors: unknown[] = [];
  analytics.on('error', (e) => errors.push(e));
  for (const e of events) {
    const common = { messageId: e.messageId, userId: e.userId, timestamp: e.timestamp, context: e.context };
    if (e.type === 'track') analytics.track({ ...common, event: e.event!, properties: e.properties });
    else analytics.identify({ ...common, traits: e.traits });
  }
  await analytics.closeAndFlush({ timeout: 20_000 });
  expect(errors).toEqual([]);
}

function at(path: string, lines: SinkLine[]): Map<string, SinkLine[]> {
  const byId = new Map<string, SinkLine[]>();
  for (const line of lines.filter((l) => l.path === path)) {
    const id = (line.body as { messageId: string }).messageId;
    byId.set(id, [...(byId.get(id) ?? []), line]);
  }
  return byId;
}

/** A request of the sample workspace's `hook` webhook: POST, its header, the HMAC of exactly the body that arrived. */
function expectSampleHook(line: SinkLine): void {
  expect(line.method).toBe('POST');
  expect(line.headers['x-cdp-sample']).toBe('yes');
  expect(line.headers['content-type']).toContain('application/json');
  const signature = `sha256=${crypto.createHmac('sha256', SAMPLE_HMAC_SECRET).update(JSON.stringify(line.body)).digest('hex')}`;
  expect(line.headers['x-signature']).toBe(signature);
}

/** Waits until the sink holds `hook` and `audit` messageIds (at least), then a few seconds more, so a late duplicate would show. */
async function settled(chain: Chain, hook: number, audit: number, mine: (id: string) => boolean): Promise<SinkLine[]> {
  const count = (path: string) => [...at(path, chain.sinkLines()).keys()].filter(mine).length;
  await waitFor(() => count('/hook') >= hook && count('/audit') >= audit, 120_000, 250);
  await sleep(3_000);
  return chain.sinkLines();
}

describe('the whole pipeline with real Segment SDKs (every service a process, the sample workspace)', () => {
  let chain: Chain;
  let tapiUrl: string;
  beforeAll(async () => {
    chain = await startChain(PIPELINE, { label: 'e2e_pipe', partitions: 2 });
    tapiUrl = chain.members.tapi!.url!;
  });
  afterAll(() => chain?.stop());

  /** A Profile API route of identity's admin server for an external id (`type:value`) of the space `main`. */
  async function profile(externalId: string, route: string): Promise<{ status: number; body: unknown }> {
    const [type, ...value] = externalId.split(':');
    const url = `${chain.members.identity!.adminUrl}/v1/spaces/main/collections/users/profiles/${type}:${encodeURIComponent(value.join(':'))}/${route}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${CHAIN_ADMIN_TOKEN}` } });
    return { status: res.status, body: await res.json() };
  }

  it('@segment/analytics-node: every event answered 200 arrives once at the sample sink, transformed, filtered, signed, with the envelope fields', async () => {
    const run = crypto.randomBytes(3).toString('hex');
    const base = Date.now() - 60_000;

    // The server source (connected to `hook` only): tracks and an identify per user.
    const server: Sent[] = Array.from({ length: EVENTS }, (_, i) => {
      const userId = `user-${run}-${i % 10}`;
      const common = { key: SERVER_KEY, messageId: `srv-${run}-${i}`, userId, timestamp: new Date(base + i) };
      return i < 10
        ? { ...common, type: 'identify' as const, traits: { email: `${userId}@example.com`, plan: 'pro' } }
        : { ...common, type: 'track' as const, event: 'Order Completed', properties: { orderId: `o-${i}`, total: i } };
    });
    // The web source: `rename-signup` renames Signed Up, `drop-ip` drops context.ip; `audit` takes
    // its track events except Heartbeat and users matching test_*.
    const webUser = `web-${run}`;
    const web: Sent[] = [
      { event: 'Signed Up', userId: webUser },
      { event: 'Product Viewed', userId: webUser },
      { event: 'Heartbeat', userId: webUser },
      { event: 'Product Viewed', userId: `test_${run}` },
    ].map((e, i) => ({
      ...e,
      key: WEB_KEY,
      type: 'track' as const,
      messageId: `web-${run}-${i}`,
      properties: { step: i },
      context: { ip: '203.0.113.7', page: { path: '/signup' } },
      timestamp: new Date(base + i),
    }));
    web.push({
      key: WEB_KEY,
      type: 'identify',
      messageId: `web-${run}-identify`,
      userId: webUser,
      traits: { email: `${webUser}@example.com` },
      timestamp: new Date(base),
    });

    const sentAt = Date.now();
    // A client retry: the same batches, with the same messageIds, sent a second time.
    await send(tapiUrl, server);
    await send(tapiUrl, server);
    await send(tapiUrl, web);

    const expectedAudit = web.filter((e) => e.type === 'track' && e.event !== 'Heartbeat' && !e.userId.startsWith('test_'));
    const expectedHook = server.length + web.length;
    const lines = await settled(chain, expectedHook, expectedAudit.length, (id) => id.includes(run));
    const ours = (byId: Map<string, SinkLine[]>) => new Map([...byId].filter(([id]) => id.includes(run)));
    const hook = ours(at('/hook', lines));
    const audit = ours(at('/audit', lines));
    expect([...hook.keys()].sort()).toEqual([...server, ...web].map((e) => e.messageId).sort());
    expect([...audit.keys()].sort()).toEqual(expectedAudit.map((e) => e.messageId).sort());
    // Once each: the client's second send is deduplicated, and each job is delivered once.
    expect([...hook.values(), ...audit.values()].filter((l) => l.length > 1)).toEqual([]);
    expect(lines.filter((l) => l.path !== '/hook' && l.path !== '/audit')).toEqual([]);

    for (const e of [...server, ...web]) {
      const [line] = hook.get(e.messageId)!;
      expectSampleHook(line);

      const body = line.body as Record<string, unknown> & { context: Record<string, unknown> };
      expect(body).toMatchObject({ type: e.type, messageId: e.messageId, userId: e.userId });
      if (e.type === 'identify') expect(body.traits).toEqual(e.traits);
      else expect(body.properties).toEqual(e.properties);
      // tapi's envelope: its receive time, the client's sentAt, the event time corrected for the client's clock.
      const receivedAt = Date.parse(body.receivedAt as string);
      expect(receivedAt).toBeGreaterThanOrEqual(sentAt - 1_000);
      expect(Date.parse(body.sentAt as string)).toBeGreaterThanOrEqual(sentAt - 1_000);
      expect(body.originalTimestamp).toBe(e.timestamp.toISOString());
      expect(Math.abs(Date.parse(body.timestamp as string) - e.timestamp.getTime())).toBeLessThan(60_000);
      expect(body.context.library).toMatchObject({ name: '@segment/analytics-node' });
      if (e.key === WEB_KEY) {
        // drop-ip removed the IP the client set; the rest of its context is intact.
        expect(body.context.ip).toBeUndefined();
        if (e.context) expect(body.context.page).toEqual(e.context.page);
        if (e.type === 'track') expect(body.event).toBe(e.event === 'Signed Up' ? 'Signup Completed' : e.event);
      } else if (e.type === 'track') {
        expect(body.event).toBe(e.event);
      }
    }
    // The audit copy is the same transformed event.
    for (const e of expectedAudit) expect(audit.get(e.messageId)![0].body).toEqual(hook.get(e.messageId)![0].body);
  });

  it('analytics.js (@segment/analytics-next) in headless Chromium: page, identify and tracks answered 200 arrive once, also when a request is sent again', async () => {
    const site = await startAnalyticsPage(tapiUrl, WEB_KEY);
    const chromium = await launchChromium();
    try {
      const page = await chromium.newPage();
      // What the SDK sent to tapi, and tapi's answer per event.
      const posts: Array<{ url: string; body: string }> = [];
      const answered = new Map<string, number>();
      page.on('response', (response) => {
        const req = response.request();
        if (req.method() !== 'POST' || !req.url().startsWith(tapiUrl)) return;
        const body = req.postData() ?? '';
        posts.push({ url: req.url(), body });
        const parsed = JSON.parse(body) as { messageId: string; batch?: Array<{ messageId: string }> };
        for (const e of parsed.batch ?? [parsed]) answered.set(e.messageId, response.status());
      });
      await page.goto(site.url);
      const user = `browser-${crypto.randomBytes(3).toString('hex')}`;
      // The snippet's page view was queued before the SDK loaded; these run on the loaded SDK.
      await page.waitForFunction(() => (globalThis as unknown as { analytics: { initialized?: boolean } }).analytics.initialized === true);
      await page.evaluate(async (userId) => {
        const analytics = (globalThis as unknown as { analytics: Record<string, (...args: unknown[]) => Promise<unknown>> }).analytics;
        await analytics.identify(userId, { email: `${userId}@example.com` });
        await analytics.track('Signed Up', { plan: 'pro' });
        await analytics.track('Product Viewed', { sku: 'sku-1' });
      }, user);
      await waitFor(() => answered.size >= 4, 30_000);
      expect([...answered.values()]).toEqual([200, 200, 200, 200]);

      // A retry of a request whose answer was lost: the same body again, from the page.
      const again = posts.find((p) => p.body.includes('Product Viewed'))!;
      const status = await page.evaluate(
        async ({ url, body }) => (await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body })).status,
        again,
      );
      expect(status).toBe(200);

      const ids = [...answered.keys()];
      const lines = await settled(chain, ids.length, 2, (id) => ids.includes(id));
      const hook = at('/hook', lines);
      const audit = at('/audit', lines);
      for (const id of ids) expect(hook.get(id)).toHaveLength(1);
      const bodies = ids.map((id) => hook.get(id)![0].body as Record<string, unknown> & { context: Record<string, unknown> });
      const byType = (type: string) => bodies.filter((b) => b.type === type);
      expect(byType('page')).toHaveLength(1);
      expect(byType('identify')[0]).toMatchObject({ userId: user, traits: { email: `${user}@example.com` } });
      expect(
        byType('track')
          .map((b) => b.event)
          .sort(),
      ).toEqual(['Product Viewed', 'Signup Completed']);
      // Only the tracks at `audit`, once each.
      expect(
        ids
          .filter((id) => audit.has(id))
          .map((id) => audit.get(id)!.length)
          .sort(),
      ).toEqual([1, 1]);
      for (const id of ids) {
        expectSampleHook(hook.get(id)![0]);
        const body = hook.get(id)![0].body as Record<string, unknown> & { context: Record<string, unknown> };
        // One anonymous visitor throughout; the user id from the identify on.
        expect(body.anonymousId).toBe(bodies[0].anonymousId);
        if (body.type !== 'page') expect(body.userId).toBe(user);
        expect(body.context.library).toMatchObject({ name: 'analytics.js' });
        expect(body.context.page).toMatchObject({ url: site.url });
        expect(body.context.userAgent).toEqual(expect.stringContaining('HeadlessChrome'));
        expect(body.context.ip).toBeUndefined();
        expect(Date.parse(body.receivedAt as string)).not.toBeNaN();
        expect(Date.parse(body.sentAt as string)).not.toBeNaN();
      }
      // One profile: the anonymous page view and the identified events, both ids, the identify's traits.
      const anonymousId = String(bodies[0].anonymousId);
      const byUser = await profile(`user_id:${user}`, 'traits');
      expect(byUser).toEqual({ status: 200, body: expect.objectContaining({ traits: { email: `${user}@example.com` } }) });
      expect((await profile(`anonymous_id:${anonymousId}`, 'traits')).body).toMatchObject({
        traits: (byUser.body as { traits: unknown }).traits,
      });
      const externalIds = (await profile(`user_id:${user}`, 'external_ids')).body as { data: Array<{ type: string; id: string }> };
      expect(externalIds.data.map((e) => `${e.type}:${e.id}`).sort()).toEqual([
        `anonymous_id:${anonymousId}`,
        `email:${user}@example.com`, // the sample space's identifiers include email
        `user_id:${user}`,
      ]);
      await waitFor(async () => {
        const events = (await profile(`anonymous_id:${anonymousId}`, 'events')).body as { data?: Array<{ message_id: string }> };
        return ids.every((id) => events.data?.some((e) => e.message_id === id));
      }, 30_000);

      // Local assets only, and nothing thrown.
      expect(chromium.blocked).toEqual([]);
      expect(chromium.pageErrors).toEqual([]);
      expect(site.served).toContain(`/v1/projects/${WEB_KEY}/settings`);
    } finally {
      await chromium.close();
      await site.close();
    }
  });

  it('a destination outage is retried and delivered once; an event the destination never accepts is archived in S3 as undelivered', async () => {
    const run = crypto.randomBytes(3).toString('hex');
    const outageUser = `outage-${run}`;
    const goneUser = `gone-${run}`;
    // `hook` answers 503 to each of the outage user's events twice (an outage), then 200; the
    // gone user's events never get anything but 503; every other event 200.
    const failures = new Map<string, number>();
    chain.sink.route('/hook', (req) => {
      const body = JSON.parse(req.body) as { messageId: string; userId?: string };
      if (body.userId === goneUser) return { status: 503, body: 'down for good' };
      if (body.userId !== outageUser) return { status: 200 };
      const failed = failures.get(body.messageId) ?? 0;
      if (failed >= 2) return { status: 200 };
      failures.set(body.messageId, failed + 1);
      return { status: 503, body: 'down for now' };
    });
    const event = (userId: string, i: number): Sent => ({
      key: SERVER_KEY,
      type: 'track',
      messageId: `${userId}-${i}`,
      userId,
      event: 'Order Completed',
      properties: { orderId: `o-${i}` },
      timestamp: new Date(),
    });
    const outage = Array.from({ length: 5 }, (_, i) => event(outageUser, i));
    const gone = Array.from({ length: 3 }, (_, i) => event(goneUser, i));
    await send(tapiUrl, [...outage, ...gone]);

    // Delivered after two refusals each, and never again after the 200.
    const lines = await settled(chain, outage.length + gone.length, 0, (id) => id.includes(run));
    const hook = at('/hook', lines);
    for (const e of outage) expect(hook.get(e.messageId)).toHaveLength(3);

    // The window closes on the gone user's events: cdp.undelivered, then the archiver's objects.
    const archived = new Map<string, Undelivered>();
    await waitFor(
      async () => {
        for (const key of await listKeys(chain.s3.client, chain.s3.bucket, '')) {
          if (!key.includes('/undelivered/server/hook/')) continue;
          for (const line of await readObjectLines(chain.s3.client, chain.s3.bucket, key)) {
            const record = JSON.parse(line) as Undelivered;
            if (record.messageId.startsWith(goneUser)) archived.set(record.messageId, record);
          }
        }
        return archived.size >= gone.length;
      },
      CHAIN_RETRY_WINDOW_MS + 90_000,
      1_000,
    );
    for (const e of gone) {
      const record = archived.get(e.messageId)!;
      expect(record).toMatchObject({ sourceId: 'server', destinationId: 'hook', lastStatus: 503, lastResponseExcerpt: 'down for good' });
      expect(record.attempts).toBeGreaterThanOrEqual(1);
      expect(hook.get(e.messageId)!.length).toBeLessThanOrEqual(record.attempts);
      expect(record.message).toMatchObject({ type: 'track', userId: goneUser, event: e.event, properties: e.properties });
    }
    // None of the outage user's events expired.
    expect([...archived.keys()].filter((id) => id.startsWith(outageUser))).toEqual([]);
  });

  it('a replay to a newly added destination delivers the archived history to it alone', async () => {
    const run = crypto.randomBytes(3).toString('hex');
    const from = new Date(Date.now() - 1_000).toISOString();
    const history = Array.from({ length: 12 }, (_, i): Sent => ({
      key: SERVER_KEY,
      type: 'track',
      messageId: `history-${run}-${i}`,
      userId: `history-${run}-${i % 3}`,
      event: 'Order Completed',
      properties: { orderId: `h-${i}` },
      timestamp: new Date(),
    }));
    await send(tapiUrl, history);
    await settled(chain, history.length, 0, (id) => id.includes(run));
    // Archived (raw) before the replay is created: its object list is fixed then.
    await waitFor(
      async () => {
        const found = new Set<string>();
        for (const key of await listKeys(chain.s3.client, chain.s3.bucket, '')) {
          if (!key.includes('/raw/server/')) continue;
          for (const line of await readObjectLines(chain.s3.client, chain.s3.bucket, key)) {
            const id = (JSON.parse(line) as { messageId: string }).messageId;
            if (id.includes(run)) found.add(id);
          }
        }
        return found.size === history.length;
      },
      60_000,
      500,
    );
    const to = new Date(Date.now() + 1_000).toISOString();

    // A destination added afterwards, connected to the server source; every service reloads the file.
    chain.updateWorkspace((text) =>
      text
        .replace(
          /\nconnections:\n/,
          `\n  - id: late\n    name: Added later\n    type: webhook\n    settings:\n      url: ${chain.sink.url}/late\n\nconnections:\n`,
        )
        .concat('  - { sourceId: server, destinationId: late }\n'),
    );
    const reloaded = async (name: 'transform' | 'director' | 'archiver') =>
      metricValue(await chain.members[name]!.process.metrics(), 'cdp_workspace_reloads_total', { outcome: 'applied' }) >= 1;
    await waitFor(async () => (await reloaded('transform')) && (await reloaded('director')) && (await reloaded('archiver')), 30_000, 250);

    const archiver = chain.members.archiver!.adminUrl;
    const headers = { authorization: `Bearer ${CHAIN_ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const created = await fetch(`${archiver}/v1/replays`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ sourceId: 'server', from, to, destinations: ['late'] }),
    });
    expect(created.status).toBe(201);
    const { data: replay } = (await created.json()) as { data: { id: string } };
    await waitFor(
      async () => {
        const res = await fetch(`${archiver}/v1/replays/${replay.id}`, { headers });
        const { data } = (await res.json()) as { data: { state: string } };
        if (data.state === 'failed' || data.state === 'cancelled') throw new Error(`replay ${replay.id}: ${data.state}`);
        return data.state === 'finished';
      },
      60_000,
      500,
    );

    // `late` gets the history once; `hook`, which had it, nothing more; `audit` (connected to the
    // web source only) none of it.
    const lines = await settled(chain, history.length, 0, (id) => id.includes(run) && at('/late', chain.sinkLines()).has(id));
    const late = at('/late', lines);
    const hook = at('/hook', lines);
    for (const e of history) {
      expect(late.get(e.messageId)).toHaveLength(1);
      expect(late.get(e.messageId)![0].body).toEqual(hook.get(e.messageId)![0].body);
      expect(hook.get(e.messageId)).toHaveLength(1);
    }
    expect([...late.keys()].filter((id) => !id.includes(run))).toEqual([]);
    expect([...at('/audit', lines).keys()].filter((id) => id.includes(run))).toEqual([]);
  });

  it("a suppressed user's events never arrive; the other events of the same batches do", async () => {
    const run = crypto.randomBytes(3).toString('hex');
    const suppressed = `suppressed-${run}`;
    const kept = `kept-${run}`;
    // A SUPPRESS_ONLY regulation on cdp.regulations, the compacted topic tapi follows.
    const producer = chain.kafka.producer();
    await producer.connect();
    const regulation: Regulation = {
      regulationId: `reg-${run}`,
      type: 'SUPPRESS_ONLY',
      userId: suppressed,
      spaceId: 'main',
      requestedAt: new Date().toISOString(),
    };
    await producer.send({
      topic: chain.topics.regulations,
      messages: [{ key: regulationKey('main', suppressed), value: JSON.stringify(regulation) }],
    });
    await producer.disconnect();
    await waitFor(async () => metricValue(await chain.members.tapi!.process.metrics(), 'cdp_tapi_suppressed_users') >= 1, 30_000, 250);

    const events = Array.from({ length: 8 }, (_, i): Sent => ({
      key: i % 4 === 0 ? WEB_KEY : SERVER_KEY,
      type: 'track',
      messageId: `${i % 2 === 0 ? suppressed : kept}-${i}`,
      userId: i % 2 === 0 ? suppressed : kept,
      event: 'Product Viewed',
      properties: { i },
      timestamp: new Date(),
    }));
    await send(
      tapiUrl,
      events.filter((e) => e.key === SERVER_KEY),
    );
    await send(
      tapiUrl,
      events.filter((e) => e.key === WEB_KEY),
    );
    const keptIds = events.filter((e) => e.userId === kept).map((e) => e.messageId);
    const lines = await settled(chain, keptIds.length, 0, (id) => id.includes(run));
    const arrived = lines.map((l) => (l.body as { messageId?: string }).messageId ?? '').filter((id) => id.includes(run));
    expect([...new Set(arrived)].sort()).toEqual(expect.arrayContaining(keptIds));
    expect(arrived.filter((id) => id.startsWith(suppressed))).toEqual([]);
  });
});
