import zlib from 'node:zlib';
import { Analytics } from '@segment/analytics-node';
import type { Envelope } from '@cdp/events';
import { metricValue } from '@cdp/testkit';
import {
  basicAuth,
  createTapiTestEnv,
  DISABLED_KEY,
  EnvelopeCollector,
  LIMITED_KEY,
  metrics,
  SERVER_KEY,
  waitReady,
  WRITE_KEY,
  type InProcessTapi,
  type TapiTestEnv,
} from './testing/harness';

// Untyped CommonJS SDKs, used exactly as an app would.
const LegacyAnalytics = require('analytics-node');
const RudderAnalytics = require('@rudderstack/rudder-sdk-node');

let env: TapiTestEnv;
let tapi: InProcessTapi;
let collector: EnvelopeCollector;
let seq = 0;
const id = (label: string) => `${label}-${Date.now().toString(36)}-${++seq}`;

beforeAll(async () => {
  env = await createTapiTestEnv('api');
  tapi = await env.start();
  await waitReady(tapi);
  collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
  await collector.start();
});

afterAll(async () => {
  await collector?.stop();
  await env?.close();
});

interface Call {
  path: string;
  body: string | Buffer;
  headers?: Record<string, string>;
  method?: string;
}

async function call({ path, body, headers = {}, method = 'POST' }: Call): Promise<Response> {
  return fetch(`${tapi.url}${path}`, { method, headers, body: method === 'GET' ? undefined : body });
}

const msg = (messageId: string, extra: Record<string, unknown> = {}) => ({
  messageId,
  userId: 'u-raw',
  event: 'Raw Event',
  properties: { n: 1 },
  ...extra,
});

function withoutServerFields(e: Envelope): Record<string, unknown> {
  const { receivedAt: _r, timestamp: _t, originalTimestamp: _o, sentAt: _s, ...rest } = e.message as Record<string, unknown>;
  const context = { ...(rest.context as Record<string, unknown>) };
  delete context.ip;
  return { ...rest, context };
}

describe('real SDKs pointed at tapi', () => {
  it('@segment/analytics-node: every call arrives with its ids, type, properties and context', async () => {
    const analytics = new Analytics({ writeKey: WRITE_KEY, host: tapi.url, flushAt: 4, flushInterval: 200 });
    const ids = Array.from({ length: 6 }, () => id('seg'));
    const context = { app: { name: 'shop', version: '1.2' }, locale: 'de-DE' };
    analytics.identify({ messageId: ids[0], userId: 'seg-u1', traits: { plan: 'pro', seats: 3 }, context });
    analytics.track({
      messageId: ids[1],
      userId: 'seg-u1',
      event: 'Order Completed',
      properties: { total: 12.5, items: [{ sku: 'a' }] },
      context,
    });
    analytics.page({ messageId: ids[2], anonymousId: 'seg-a1', name: 'Home', category: 'Docs', properties: { path: '/' } });
    analytics.screen({ messageId: ids[3], userId: 'seg-u1', name: 'Cart', properties: { step: 2 } });
    analytics.group({ messageId: ids[4], userId: 'seg-u1', groupId: 'org-1', traits: { name: 'Org' } });
    analytics.alias({ messageId: ids[5], userId: 'seg-u1', previousId: 'seg-a1' });
    await analytics.closeAndFlush({ timeout: 20_000 });
    const got = await collector.waitForIds(ids);
    expect(got.map((e) => e.message.type)).toEqual(['identify', 'track', 'page', 'screen', 'group', 'alias']);
    expect(got.every((e) => e.sourceId === 'web')).toBe(true);
    expect(got[0].message.traits).toEqual({ plan: 'pro', seats: 3 });
    expect(got[0].message.context).toMatchObject({ ...context, library: { name: '@segment/analytics-node' } });
    expect(got[1].message).toMatchObject({
      userId: 'seg-u1',
      event: 'Order Completed',
      properties: { total: 12.5, items: [{ sku: 'a' }] },
    });
    expect(got[2].message).toMatchObject({ anonymousId: 'seg-a1', name: 'Home', properties: { path: '/' } });
    expect(got[3].message).toMatchObject({ name: 'Cart', properties: { step: 2 } });
    expect(got[4].message).toMatchObject({ groupId: 'org-1', traits: { name: 'Org' } });
    expect(got[5].message).toMatchObject({ userId: 'seg-u1', previousId: 'seg-a1' });
    for (const e of got) {
      expect(e.messageId).toBe(e.message.messageId);
      expect(e.message.context?.ip).toBe('127.0.0.1');
      expect(Date.parse(e.receivedAt)).toBeGreaterThan(Date.now() - 120_000);
    }
  });

  it('legacy analytics-node 6.x: events arrive as sent', async () => {
    const analytics = new LegacyAnalytics(SERVER_KEY, { host: tapi.url, flushAt: 3, flushInterval: 200 });
    const ids = [id('legacy'), id('legacy'), id('legacy')];
    analytics.identify({ messageId: ids[0], userId: 'legacy-u1', traits: { email: 'a@example.com' } });
    analytics.track({
      messageId: ids[1],
      userId: 'legacy-u1',
      event: 'Signed Up',
      properties: { plan: 'free' },
      context: { campaign: { name: 'x' } },
    });
    analytics.page({ messageId: ids[2], userId: 'legacy-u1', name: 'Pricing', properties: { url: 'https://e.com/p' } });
    await new Promise<void>((resolve, reject) => analytics.flush((err: Error | undefined) => (err ? reject(err) : resolve())));
    const got = await collector.waitForIds(ids);
    expect(got.map((e) => [e.sourceId, e.message.type])).toEqual([
      ['server', 'identify'],
      ['server', 'track'],
      ['server', 'page'],
    ]);
    expect(got[0].message.traits).toEqual({ email: 'a@example.com' });
    expect(got[1].message).toMatchObject({
      event: 'Signed Up',
      properties: { plan: 'free' },
      context: { campaign: { name: 'x' }, library: { name: 'analytics-node' } },
    });
    expect(got[2].message).toMatchObject({ name: 'Pricing', properties: { url: 'https://e.com/p' } });
  });

  it('@rudderstack/rudder-sdk-node (gzip, form content type): events arrive as sent', async () => {
    const analytics = new RudderAnalytics(WRITE_KEY, { dataPlaneUrl: tapi.url, flushAt: 2, flushInterval: 200, logLevel: 'error' });
    expect(analytics.gzip).toBe(true);
    const ids = [id('rudder'), id('rudder')];
    analytics.track({ messageId: ids[0], userId: 'rudder-u1', event: 'Product Viewed', properties: { sku: 'p-1', price: 9 } });
    analytics.identify({ messageId: ids[1], anonymousId: 'rudder-a1', traits: { name: 'R' }, context: { os: { name: 'linux' } } });
    await new Promise<void>((resolve, reject) => analytics.flush((err: Error | undefined) => (err ? reject(err) : resolve())));
    const got = await collector.waitForIds(ids);
    expect(got).toHaveLength(2);
    expect(got[0].message).toMatchObject({
      type: 'track',
      userId: 'rudder-u1',
      event: 'Product Viewed',
      properties: { sku: 'p-1', price: 9 },
    });
    expect(got[1].message).toMatchObject({
      type: 'identify',
      anonymousId: 'rudder-a1',
      traits: { name: 'R' },
      context: { os: { name: 'linux' } },
    });
    // Rudder sends originalTimestamp only: tapi derives the corrected timestamp from it.
    expect(typeof got[0].message.timestamp).toBe('string');
    const wire = await metrics(tapi);
    expect(metricValue(wire, 'cdp_tapi_request_bytes_total', { stage: 'wire' })).toBeLessThan(
      metricValue(wire, 'cdp_tapi_request_bytes_total', { stage: 'decoded' }),
    );
  });
});

describe('raw HTTP matrix', () => {
  const json = { 'Content-Type': 'application/json' };
  const auth = { ...json, Authorization: basicAuth(WRITE_KEY) };

  const singles: Array<[string, string, Record<string, unknown>]> = [
    ['/v1/identify', 'identify', { traits: { a: 1 } }],
    ['/v1/track', 'track', {}],
    ['/v1/page', 'page', { name: 'P' }],
    ['/v1/screen', 'screen', { name: 'S' }],
    ['/v1/group', 'group', { groupId: 'g1' }],
    ['/v1/alias', 'alias', { previousId: 'old' }],
    ['/v1/i', 'identify', {}],
    ['/v1/t', 'track', {}],
    ['/v1/p', 'page', {}],
    ['/v1/s', 'screen', {}],
    ['/v1/g', 'group', { groupId: 'g1' }],
    ['/v1/a', 'alias', { previousId: 'old' }],
  ];
  it.each(singles)('POST %s publishes one %s', async (path, type, extra) => {
    const messageId = id('single');
    const res = await call({ path, body: JSON.stringify(msg(messageId, extra)), headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ success: true });
    const [e] = await collector.waitForIds([messageId]);
    expect(e.message.type).toBe(type);
    expect(e.sourceId).toBe('web');
  });

  it.each(['/v1/batch', '/v1/import', '/v1/b'])('POST %s publishes every item with batch context/integrations merged', async (path) => {
    const ids = [id('batch'), id('batch')];
    const body = {
      batch: [
        { type: 'track', ...msg(ids[0]), context: { locale: 'fr' } },
        { type: 'identify', messageId: ids[1], anonymousId: 'anon-1', integrations: { Mixpanel: false } },
      ],
      context: { library: { name: 'raw' }, locale: 'en' },
      integrations: { All: true },
      writeKey: WRITE_KEY,
    };
    const res = await call({ path, body: JSON.stringify(body), headers: json });
    expect(res.status).toBe(200);
    const got = await collector.waitForIds(ids);
    expect(got[0].message.context).toMatchObject({ library: { name: 'raw' }, locale: 'fr', ip: '127.0.0.1' });
    expect(got[1].message.context).toMatchObject({ library: { name: 'raw' }, locale: 'en' });
    expect(got[1].message.integrations).toEqual({ All: true, Mixpanel: false });
  });

  it.each([
    ['Basic key:', { Authorization: basicAuth(WRITE_KEY) }, {}],
    ['Basic key without colon', { Authorization: basicAuth(WRITE_KEY, false) }, {}],
    ['body writeKey', {}, { writeKey: WRITE_KEY }],
    ['Bearer + body writeKey', { Authorization: 'Bearer some-oauth-token' }, { writeKey: WRITE_KEY }],
  ])('auth by %s publishes', async (_label, headers, bodyExtra) => {
    const messageId = id('auth');
    const res = await call({
      path: '/v1/track',
      body: JSON.stringify({ ...msg(messageId), ...bodyExtra }),
      headers: { ...json, ...headers },
    });
    expect(res.status).toBe(200);
    expect(await collector.waitForIds([messageId])).toHaveLength(1);
  });

  it.each([
    ['no write key', {}, {}, 'unknown_write_key'],
    ['unknown write key', { Authorization: basicAuth('wk_nobody') }, {}, 'unknown_write_key'],
    ['disabled source', {}, { writeKey: DISABLED_KEY }, 'source_disabled'],
  ])('%s: 200 but nothing published, counted', async (_label, headers, bodyExtra, reason) => {
    const before = metricValue(await metrics(tapi), 'cdp_tapi_events_dropped_total', { reason });
    const messageId = id('noauth');
    const res = await call({
      path: '/v1/track',
      body: JSON.stringify({ ...msg(messageId), ...bodyExtra }),
      headers: { ...json, ...headers },
    });
    expect(res.status).toBe(200);
    await collector.catchUp();
    expect(collector.byId.has(messageId)).toBe(false);
    expect(metricValue(await metrics(tapi), 'cdp_tapi_events_dropped_total', { reason })).toBe(before + 1);
  });

  it.each([
    ['application/json', (b: string) => Buffer.from(b), {}],
    ['text/plain', (b: string) => Buffer.from(b), {}],
    ['application/x-www-form-urlencoded', (b: string) => Buffer.from(b), {}],
    ['(none)', (b: string) => Buffer.from(b), {}],
    ['application/json + gzip', (b: string) => zlib.gzipSync(b), { 'Content-Encoding': 'gzip' }],
    ['text/plain + deflate', (b: string) => zlib.deflateSync(b), { 'Content-Encoding': 'deflate' }],
    ['form + gzip', (b: string) => zlib.gzipSync(b), { 'Content-Encoding': 'gzip' }],
  ])('content type %s is parsed as JSON', async (type, encode, extra) => {
    const messageId = id('ctype');
    const headers: Record<string, string> = { Authorization: basicAuth(WRITE_KEY), ...extra };
    const ct = type.split(' ')[0];
    if (ct !== '(none)') headers['Content-Type'] = ct === 'form' ? 'application/x-www-form-urlencoded' : ct;
    const res = await call({ path: '/v1/track', body: encode(JSON.stringify(msg(messageId))), headers });
    expect(res.status).toBe(200);
    expect(await collector.waitForIds([messageId])).toHaveLength(1);
  });

  it.each([
    ['malformed JSON', '/v1/track', Buffer.from('{"type":"track",'), {}, 'invalid_json'],
    ['a JSON array', '/v1/track', Buffer.from('[1,2]'), {}, 'invalid_body'],
    ['batch without batch array', '/v1/batch', Buffer.from('{"batch":{}}'), {}, 'invalid_body'],
    ['corrupt gzip', '/v1/track', Buffer.from('definitely not gzip'), { 'Content-Encoding': 'gzip' }, 'bad_encoding'],
    ['unknown encoding', '/v1/track', Buffer.from('{}'), { 'Content-Encoding': 'lzma' }, 'bad_encoding'],
    ['gzip bomb', '/v1/batch', zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)), { 'Content-Encoding': 'gzip' }, 'payload_too_large'],
    [
      'event over 32 KB',
      '/v1/track',
      Buffer.from(JSON.stringify(msg('big', { properties: { s: 'x'.repeat(33 * 1024) } }))),
      {},
      'event_too_large',
    ],
    [
      'batch event over 32 KB',
      '/v1/batch',
      Buffer.from(JSON.stringify({ batch: [{ type: 'track', ...msg('big', { properties: { s: 'x'.repeat(33 * 1024) } }) }] })),
      {},
      'event_too_large',
    ],
    [
      'batch over 500 KB',
      '/v1/batch',
      Buffer.from(
        JSON.stringify({
          batch: Array.from({ length: 20 }, () => ({ type: 'track', ...msg('b', { properties: { s: 'x'.repeat(30 * 1024) } }) })),
        }),
      ),
      {},
      'payload_too_large',
    ],
  ])('%s → 400 with a JSON error', async (_label, path, body, extra, code) => {
    const res = await call({ path, body, headers: { ...auth, ...extra } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  it('a batch of 2,501 events: 200, the first 2,500 published, the extra dropped and counted', async () => {
    const prefix = id('many');
    const batch = Array.from({ length: 2_501 }, (_, i) => ({ type: 'track', messageId: `${prefix}-${i}`, userId: 'u', event: 'E' }));
    const before = metricValue(await metrics(tapi), 'cdp_tapi_events_dropped_total', { reason: 'batch_overflow' });
    const res = await call({ path: '/v1/batch', body: JSON.stringify({ batch }), headers: auth });
    expect(res.status).toBe(200);
    await collector.catchUp();
    const seen = batch.filter((m) => collector.byId.has(m.messageId)).length;
    expect(seen).toBe(2_500);
    expect(collector.byId.has(`${prefix}-2500`)).toBe(false);
    expect(metricValue(await metrics(tapi), 'cdp_tapi_events_dropped_total', { reason: 'batch_overflow' })).toBe(before + 1);
  });

  it('drops invalid events of a batch with a counted reason and keeps the rest', async () => {
    const good = id('good');
    const bad = [id('bad'), id('bad'), id('bad'), 'x'.repeat(101)];
    const before = await metrics(tapi);
    const res = await call({
      path: '/v1/batch',
      body: JSON.stringify({
        batch: [
          { type: 'track', messageId: bad[0], event: 'no user' },
          { type: 'alias', messageId: bad[1], userId: 'u' },
          { type: 'bogus', messageId: bad[2], userId: 'u' },
          { type: 'track', messageId: bad[3], userId: 'u', event: 'E' },
          { type: 'track', ...msg(good) },
        ],
      }),
      headers: auth,
    });
    expect(res.status).toBe(200);
    await collector.waitForIds([good]);
    await collector.catchUp();
    for (const b of bad) expect(collector.byId.has(b)).toBe(false);
    const after = await metrics(tapi);
    for (const reason of ['missing_user_id', 'missing_previous_id', 'invalid_type', 'message_id_too_long']) {
      expect(
        metricValue(after, 'cdp_tapi_events_dropped_total', { reason }) - metricValue(before, 'cdp_tapi_events_dropped_total', { reason }),
      ).toBe(1);
    }
  });

  it('corrects a client clock 3,600 s ahead to within seconds of real time, keeping originalTimestamp', async () => {
    const messageId = id('skew');
    const ahead = Date.now() + 3_600_000;
    const timestamp = new Date(ahead - 2_000).toISOString();
    const sentAt = new Date(ahead).toISOString();
    const res = await call({ path: '/v1/track', body: JSON.stringify({ ...msg(messageId), timestamp, sentAt }), headers: auth });
    expect(res.status).toBe(200);
    const [e] = await collector.waitForIds([messageId]);
    expect(e.message.originalTimestamp).toBe(timestamp);
    expect(Math.abs(Date.parse(e.message.timestamp!) - (Date.now() - 2_000))).toBeLessThan(30_000);
    expect(Date.parse(e.message.timestamp!)).toBeLessThan(Date.parse(timestamp) - 3_500_000);
  });

  it('fills a missing messageId and keeps a client-set context.ip', async () => {
    const marker = id('noid');
    const res = await call({
      path: '/v1/track',
      body: JSON.stringify({ userId: marker, event: 'E', context: { ip: '203.0.113.9' } }),
      headers: auth,
    });
    expect(res.status).toBe(200);
    await collector.catchUp();
    const e = collector.all.find((x) => x.message.userId === marker)!;
    expect(e.messageId).toMatch(/^api-/);
    expect(e.message.context?.ip).toBe('203.0.113.9');
  });

  it('rate-limits a source with 429 and Retry-After', async () => {
    const body = JSON.stringify({ batch: Array.from({ length: 5 }, () => ({ type: 'track', ...msg(id('rl')) })), writeKey: LIMITED_KEY });
    expect((await call({ path: '/v1/batch', body, headers: json })).status).toBe(200);
    const limited = await call({ path: '/v1/batch', body, headers: json });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('x-ratelimit-reset')).not.toBeNull();
  });

  it('pixel: always a 1×1 gif; a valid pixel is published', async () => {
    const messageId = id('pixel');
    const data = Buffer.from(JSON.stringify({ writeKey: WRITE_KEY, userId: 'px', event: 'Email Opened', messageId })).toString('base64');
    const ok = await call({ method: 'GET', path: `/v1/pixel/track?data=${encodeURIComponent(data)}`, body: '' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/gif');
    expect(
      Buffer.from(await ok.arrayBuffer())
        .subarray(0, 6)
        .toString(),
    ).toBe('GIF89a');
    const [e] = await collector.waitForIds([messageId]);
    expect(e.message).toMatchObject({ type: 'track', event: 'Email Opened', userId: 'px' });
    for (const path of ['/v1/pixel/track?data=%%%', '/v1/pixel/nope?data=e30=', '/v1/pixel/page']) {
      const res = await call({ method: 'GET', path, body: '' });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/gif');
    }
  });

  it('serves the settings document pointing analytics.js here; 404 for unknown keys', async () => {
    const res = await call({ method: 'GET', path: `/v1/projects/${WRITE_KEY}/settings`, body: '' });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { integrations: Record<string, { apiKey: string; apiHost: string }> };
    expect(doc.integrations['Segment.io']).toMatchObject({ apiKey: WRITE_KEY, apiHost: `${new URL(tapi.url).host}/v1` });
    expect((await call({ method: 'GET', path: '/v1/projects/wk_unknown/settings', body: '' })).status).toBe(404);
  });

  it('answers CORS preflight and sets CORS headers on posts', async () => {
    const pre = await call({
      method: 'OPTIONS',
      path: '/v1/t',
      body: '',
      headers: {
        Origin: 'https://shop.example',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://shop.example');
    expect(pre.headers.get('access-control-allow-headers')).toBe('content-type,authorization');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    const post = await call({ path: '/v1/t', body: JSON.stringify(msg(id('cors'))), headers: { ...auth, Origin: 'https://shop.example' } });
    expect(post.status).toBe(200);
    expect(post.headers.get('access-control-allow-origin')).toBe('https://shop.example');
  });

  it('counts requests by endpoint and status', async () => {
    const text = await metrics(tapi);
    expect(metricValue(text, 'cdp_tapi_requests_total', { endpoint: 'track', status: '200' })).toBeGreaterThan(0);
    expect(metricValue(text, 'cdp_tapi_requests_total', { status: '400' })).toBeGreaterThan(0);
    expect(metricValue(text, 'cdp_tapi_events_accepted_total', { source: 'web', stored: 'primary' })).toBeGreaterThan(0);
    expect(metricValue(text, 'cdp_tapi_active_cluster', { cluster: 'primary' })).toBe(1);
  });

  it('unchanged events compare equal to what was sent apart from server-set fields', async () => {
    const messageId = id('eq');
    const sent = {
      type: 'track',
      messageId,
      userId: 'eq-u',
      event: 'Equal',
      properties: { a: [1, { b: null }], c: 'ü' },
      context: { locale: 'x' },
      integrations: {},
    };
    await call({ path: '/v1/track', body: JSON.stringify(sent), headers: auth });
    const [e] = await collector.waitForIds([messageId]);
    expect(withoutServerFields(e)).toEqual(sent);
  });
});
