import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Envelope, SegmentMessage } from '@cdp/events';
import { startAdminServer, type RunningServer } from '@cdp/http';
import type { BatchContext, Decoded } from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { currentRunId, LOCAL_AWS_ENV, requireEnv, uniqueSuffix } from '@cdp/testkit';
import { parseWorkspace, type Workspace } from '@cdp/workspace';
import { GraphStore } from './graph';
import { profileApiRoutes } from './profile-api';
import { RecentEvents } from './recent';
import { Resolver } from './resolver';
import { IdentityStage } from './service';
import { dynamoClient, ensureTables, tableNames, type TableNames } from './tables';

const TOKEN = 'profile-api-test-token-0123456789';
const DAY = 86_400_000;
let client: DynamoDBClient;
let tables: TableNames;
let srv: RunningServer;
let limited: RunningServer;
let workspace: Workspace;
let stage: IdentityStage;
const prefix = `t${currentRunId()}-${uniqueSuffix()}-`;
const t0 = Date.now() - DAY;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function get(path: string, auth: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }, server = srv) {
  const res = await fetch(`${server.url}${path}`, { headers: auth });
  return {
    status: res.status,
    requestId: res.headers.get('request-id'),
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as Json,
  };
}

const base = (id: string, space = 'main') => `/v1/spaces/${space}/collections/users/profiles/${encodeURIComponent(id)}`;

let seq = 0;
async function send(sourceId: string, messages: Array<Partial<SegmentMessage>>): Promise<void> {
  const ctx: BatchContext = {
    topic: 't',
    partition: 0,
    heartbeat: async () => undefined,
    deadLetter: () => undefined,
    isRunning: () => true,
  };
  const items: Decoded<Envelope>[] = messages.map((m) => {
    const messageId = `pm${++seq}`;
    const at = new Date(t0 + seq * 1000).toISOString();
    const message = { type: 'track', event: 'Viewed', messageId, timestamp: at, properties: { seq }, ...m } as SegmentMessage;
    return {
      message: { topic: 't', partition: 0, offset: String(seq), key: null, value: null, headers: {}, timestamp: '0' },
      value: { v: 1, sourceId, messageId, receivedAt: at, message },
    };
  });
  await stage.handle(items, ctx);
}

/** Every item of a list route, following `cursor.next`; also the number of pages. */
async function all(path: string, key: 'data' | 'traits'): Promise<{ items: unknown[]; pages: number }> {
  const items: unknown[] = [];
  let next = '';
  let pages = 0;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const r = await get(next ? `${path}${sep}next=${next}` : path);
    expect(r.status).toBe(200);
    expect(r.body.cursor).toMatchObject({ has_more: r.body.cursor.next !== '' });
    items.push(...(key === 'traits' ? Object.entries(r.body.traits) : r.body.data));
    next = r.body.cursor.next;
    pages++;
  } while (next && pages < 50);
  return { items, pages };
}

beforeAll(async () => {
  client = dynamoClient({ AWS_REGION: LOCAL_AWS_ENV.AWS_REGION, DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT') });
  tables = tableNames(prefix);
  await ensureTables(client, tables);
  workspace = parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        { id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web_profile_api'] },
        { id: 'ios', name: 'ios', spaceId: 'main', writeKeys: ['wk_ios_profile_api'] },
      ],
    }),
    { format: 'json' },
  );
  const store = new GraphStore(client, tables);
  const recent = new RecentEvents(client, tables, { size: 1_000, ttlMs: 14 * DAY });
  stage = new IdentityStage({
    resolver: new Resolver(store, { cacheTtlMs: 5_000, cacheEntries: 1_000 }),
    recent,
    producer: { send: async () => undefined },
    outputTopic: 'unused',
    workspace: () => workspace,
  });
  const logger = createLogger({ name: 'profile-api-test', level: 'warn' });
  const routes = (rate: number) => profileApiRoutes({ store, recent, workspace: () => workspace, ratePerSecond: rate });
  srv = await startAdminServer({ service: 'identity', port: 0, host: '127.0.0.1', token: TOKEN, logger, routes: routes(10_000) });
  limited = await startAdminServer({ service: 'identity', port: 0, host: '127.0.0.1', token: TOKEN, logger, routes: routes(5) });

  // u1: an anonymous visit on web, an identify with 25 traits and an email, 30 tracks of three
  // names, a second device (ios) joined by an alias. u2 shares u1's first anonymousId (merge refused).
  await send('web', [{ anonymousId: 'a1' }]);
  await send('web', [
    {
      type: 'identify',
      userId: 'u1',
      anonymousId: 'a1',
      traits: { email: 'u1@x.io', ...Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`t${String(i).padStart(2, '0')}`, i])) },
    },
  ]);
  await send(
    'web',
    Array.from({ length: 30 }, (_, i) => ({ userId: 'u1', event: ['Viewed', 'Added', 'Bought'][i % 3] })),
  );
  await send('ios', [{ anonymousId: 'b1', event: 'Opened' }]);
  await send('ios', [{ type: 'alias', userId: 'u1', previousId: 'b1' }]);
  await send('web', [{ type: 'identify', userId: 'u2', anonymousId: 'a1', traits: { name: 'Two' } }]);
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await limited?.close();
  for (const TableName of Object.values(tables ?? {})) await client.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
  client?.destroy();
});

describe('Profile API over HTTP (DynamoDB Local)', () => {
  it('refuses without a token or with a wrong one (401 authentication_error); takes Bearer and Basic with the token as user name', async () => {
    const none = await get(`${base('user_id:u1')}/traits`, {});
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('authentication_error');
    expect((await get(`${base('user_id:u1')}/traits`, { Authorization: 'Bearer wrong-token-wrong-token' })).status).toBe(401);
    const basic = await get(`${base('user_id:u1')}/traits`, { Authorization: `Basic ${Buffer.from(`${TOKEN}:`).toString('base64')}` });
    expect(basic.status).toBe(200);
    expect(basic.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('traits: ten by default, paged by next through every trait, include, verbose with source and time, class', async () => {
    const first = await get(`${base('user_id:u1')}/traits`);
    expect(Object.keys(first.body.traits)).toHaveLength(10);
    expect(first.body.cursor).toMatchObject({ url: `${base('user_id:u1')}/traits`, has_more: true });
    const { items, pages } = await all(`${base('user_id:u1')}/traits?limit=10`, 'traits');
    expect(pages).toBe(3);
    expect(Object.fromEntries(items as Array<[string, unknown]>)).toEqual({
      email: 'u1@x.io',
      ...Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`t${String(i).padStart(2, '0')}`, i])),
    });
    const some = await get(`${base('user_id:u1')}/traits?include=email,t03&verbose=true`);
    expect(some.body.traits).toEqual({
      email: { value: 'u1@x.io', source_id: 'web', updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      t03: { value: 3, source_id: 'web', updated_at: some.body.traits.email.updated_at },
    });
    expect((await get(`${base('user_id:u1')}/traits?class=audience`)).body.traits).toEqual({});
    expect((await get(`${base('user_id:u1')}/traits?limit=201`)).status).toBe(400);
  });

  it('external_ids: Segment shape with source and first message, paged, filtered by type', async () => {
    const { items, pages } = await all(`${base('user_id:u1')}/external_ids?limit=2`, 'data');
    expect(pages).toBe(2);
    expect((items as Json[]).map((i) => `${i.type}:${i.id}`).sort()).toEqual([
      'anonymous_id:a1',
      'anonymous_id:b1',
      'email:u1@x.io',
      'user_id:u1',
    ]);
    const b1 = (items as Json[]).find((i) => i.id === 'b1')!;
    expect(b1).toEqual({
      source_id: 'ios',
      collection: 'users',
      id: 'b1',
      type: 'anonymous_id',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      encoding: 'none',
      first_message_id: expect.stringMatching(/^pm\d+$/),
    });
    const anon = await get(`${base('email:u1@x.io')}/external_ids?include=anonymous_id`);
    expect(anon.body.data.map((i: Json) => i.id).sort()).toEqual(['a1', 'b1']);
  });

  it('events: newest first by default, paged, asc, start/end, include/exclude, Segment shape', async () => {
    const { items, pages } = await all(`${base('user_id:u1')}/events?limit=10`, 'data');
    // a1's visit, the identify, 30 tracks, b1's event (merged in), the alias.
    expect(items).toHaveLength(34);
    expect(pages).toBe(4);
    const times = (items as Json[]).map((e) => Date.parse(e.timestamp));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const opened = (items as Json[]).find((e) => e.event === 'Opened')!;
    expect(opened).toMatchObject({
      type: 'track',
      source_id: 'ios',
      message_id: expect.any(String),
      properties: expect.any(Object),
      context: {},
      related: null,
      external_ids: [{ collection: 'users', type: 'anonymous_id', id: 'b1', source_id: 'ios', encoding: 'none' }],
    });
    const asc = await get(`${base('user_id:u1')}/events?sort=asc&limit=3`);
    expect(asc.body.data.map((e: Json) => e.type)).toEqual(['track', 'identify', 'track']);
    const bought = await get(`${base('user_id:u1')}/events?include=Bought&limit=100`);
    expect(bought.body.data).toHaveLength(10);
    const notViewed = await get(`${base('user_id:u1')}/events?exclude=Viewed&limit=100`);
    expect(notViewed.body.data.some((e: Json) => e.event === 'Viewed')).toBe(false);
    const start = new Date(t0 + 10_000).toISOString();
    const end = new Date(t0 + 20_000).toISOString();
    const window = await get(`${base('user_id:u1')}/events?start=${start}&end=${end}&limit=100`);
    for (const e of window.body.data) expect(Date.parse(e.timestamp)).toBeGreaterThanOrEqual(t0 + 10_000);
    expect(window.body.data.length).toBeGreaterThan(0);
    expect(window.body.data.length).toBeLessThanOrEqual(11);
  });

  it('metadata and links', async () => {
    const m = await get(`${base('user_id:u1')}/metadata`);
    expect(m.body).toEqual({
      metadata: {
        created_at: expect.any(String),
        updated_at: expect.any(String),
        expires_at: null,
        first_message_id: 'pm1',
        first_source_id: 'web',
        last_message_id: expect.stringMatching(/^pm\d+$/),
        last_source_id: 'ios',
      },
    });
    const links = await get(`${base('user_id:u1')}/links`);
    expect(links.body).toEqual({ data: [], cursor: { url: `${base('user_id:u1')}/links`, has_more: false, next: '' } });
  });

  it('a merged-away id answers with its winner; merges explains the merge and the refused shared anonymousId', async () => {
    const viaB1 = await get(`${base('anonymous_id:b1')}/traits?include=email`);
    expect(viaB1.body.traits).toEqual({ email: 'u1@x.io' });
    const merges = await get(`${base('anonymous_id:b1')}/merges`);
    expect(merges.status).toBe(200);
    expect(merges.body.merges).toHaveLength(1);
    expect(merges.body.merges[0]).toMatchObject({
      merged_profiles: [expect.any(String)],
      source_id: 'ios',
      matched_ids: ['user_id:u1', 'anonymous_id:b1'],
    });
    expect(merges.body.merged_from).toEqual(merges.body.merges[0].merged_profiles);
    const u2 = await get(`${base('user_id:u2')}/merges`);
    expect(u2.body.refusals).toEqual([
      expect.objectContaining({
        reason: 'value_limit',
        id: 'anonymous_id:a1',
        limit_type: 'user_id',
        other_profile_id: merges.body.profile_id,
      }),
    ]);
    expect((await get(`${base('user_id:u2')}/traits`)).body.traits).toEqual({ name: 'Two' });
  });

  it('errors: 404 not_found for an unknown profile or space, 400 for bad input, 429 rate_limit_error past the per-space rate', async () => {
    for (const path of [`${base('user_id:nobody')}/traits`, `${base('user_id:u1', 'nospace')}/traits`]) {
      const r = await get(path);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ error: { code: 'not_found', message: 'Profile was not found.' } });
    }
    const bad: Array<[string, string]> = [
      [`${base('u1')}/traits`, 'validation_error'],
      [`${base('user_id:u1')}/events?sort=up`, 'validation_error'],
      [`${base('user_id:u1')}/events?start=yesterday`, 'validation_error'],
      [`${base('user_id:u1')}/traits?verbose=maybe`, 'validation_error'],
      [`${base('user_id:u1')}/events?limit=0`, 'invalid_request_error'],
      [`${base('user_id:u1')}/events?next=@@@`, 'invalid_request_error'],
    ];
    for (const [path, code] of bad) {
      const r = await get(path);
      expect([path, r.status, r.body.error?.code]).toEqual([path, 400, code]);
    }
    // At once: sent one after another, slow answers on a loaded machine let the budget refill (seen).
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(`${base('user_id:u1')}/metadata`, undefined, limited)));
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0].body.error.code).toBe('rate_limit_error');
    expect(Number(refused[0].retryAfter)).toBeGreaterThanOrEqual(1);
    // Another space has its own budget.
    expect((await get(`${base('user_id:u1', 'other')}/metadata`, undefined, limited)).status).toBe(404);
  });
});
