// The whole pipeline as processes — tapi → dedup → identity → transform → director → webhook —
// on the real harness (Kafka, MariaDB, DynamoDB Local, the Consul dev server), with the sample
// workspace delivering to a sample sink, driven by the unchanged Segment Node SDK. Every event
// tapi answered 200 must reach the sink once (also when the client sends its batches twice, as
// a retry after a lost response does), with the fields the client set, tapi's envelope fields,
// the source's transformations applied and the destinations' subscriptions and filters obeyed.
import crypto from 'node:crypto';
import { Analytics } from '@segment/analytics-node';
import { sleep, waitFor, type SinkLine } from '@cdp/testkit';
import { PIPELINE, SAMPLE_HMAC_SECRET, startChain, type Chain } from './testing/chain';

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

describe('the whole pipeline with @segment/analytics-node (every service a process, the sample workspace)', () => {
  let chain: Chain | undefined;
  afterAll(() => chain?.stop());

  it('delivers every event answered 200 once to the sample sink: transformed, filtered, signed, with the envelope fields', async () => {
    chain = await startChain(PIPELINE, { label: 'e2e_pipe', partitions: 2 });
    const tapiUrl = chain.members.tapi!.url!;
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
    // Settled: every expected request arrived and nothing more for a few seconds (a duplicate would be late).
    let lines: SinkLine[] = [];
    await waitFor(
      () => {
        lines = chain!.sinkLines();
        return at('/hook', lines).size >= expectedHook && at('/audit', lines).size >= expectedAudit.length;
      },
      120_000,
      250,
    );
    await sleep(3_000);
    lines = chain.sinkLines();

    const hook = at('/hook', lines);
    const audit = at('/audit', lines);
    expect([...hook.keys()].sort()).toEqual([...server, ...web].map((e) => e.messageId).sort());
    expect([...audit.keys()].sort()).toEqual(expectedAudit.map((e) => e.messageId).sort());
    // Once each: the client's second send is deduplicated, and each job is delivered once.
    expect([...hook.values(), ...audit.values()].filter((l) => l.length > 1)).toEqual([]);
    expect(lines.filter((l) => l.path !== '/hook' && l.path !== '/audit')).toEqual([]);

    for (const e of [...server, ...web]) {
      const [line] = hook.get(e.messageId)!;
      expect(line.method).toBe('POST');
      // The workspace's header, and the HMAC of exactly the body that arrived.
      expect(line.headers['x-cdp-sample']).toBe('yes');
      expect(line.headers['content-type']).toContain('application/json');
      const raw = JSON.stringify(line.body);
      const signature = `sha256=${crypto.createHmac('sha256', SAMPLE_HMAC_SECRET).update(raw).digest('hex')}`;
      expect(line.headers['x-signature']).toBe(signature);

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
});
