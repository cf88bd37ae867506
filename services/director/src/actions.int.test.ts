// Segment's action destinations run by the director over a real JobDB: each job's payload is the
// event, the subscription's mapping makes the partner's request. Partners' HTTPS calls go to a
// local HTTPS sink (a test CA; every connection sent to 127.0.0.1 by DIRECTOR_ACTIONS_CONNECT_TO,
// the TLS name still the partner's), never the internet; each request is checked field by field.
import crypto from 'node:crypto';
import { actionDestinationIssues } from '@cdp/actions';
import { createLogger } from '@cdp/log';
import { HttpSink, makeTestCertificates, type SinkAnswer, type SinkRequest, type TestCertificates } from '@cdp/testkit';
import { parseWorkspace, type Workspace } from '@cdp/workspace';
import { historyOf, MemoryPublisher, postJobs, TestEnv, testSettings, useDirectorSuite, waitFor } from './testing/harness';
import type { Director } from './service';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let partners: HttpSink;
let certs: TestCertificates;
let director: Director;
let stopped = false;
let database: string;

const secrets = {
  H26_WEBHOOK_SECRET: 'wh-shared-secret',
  H26_AMPLITUDE_API_KEY: 'amp-api-key-1',
  H26_AMPLITUDE_SECRET: 'amp-secret-1',
  H26_MIXPANEL_TOKEN: 'mp-project-token',
  H26_MIXPANEL_SECRET: 'mp-api-secret',
  H26_HUBSPOT_REFRESH: 'hs-refresh-token',
  H26_HUBSPOT_CLIENT_SECRET: 'hs-client-secret',
};
const PARTNER_HOSTS = ['api2.amplitude.com', 'api.mixpanel.com', 'hooks.slack.com', 'api.hubapi.com'];
const SLACK_PATH = '/services/T000/B000/XXXX';

/** Answers for requests whose body carries a marker, in order; 200 once they are used up. */
const scripted = new Map<string, Array<SinkAnswer | 'hang' | ((req: SinkRequest) => SinkAnswer)>>();
function answer(req: SinkRequest): SinkAnswer | 'hang' {
  for (const [marker, answers] of scripted) {
    if (!req.body.includes(marker) || answers.length === 0) continue;
    const next = answers.shift()!;
    return typeof next === 'function' ? next(req) : next;
  }
  // Mixpanel's /import answers its status in the body, which its definition reads per record.
  const body = req.path.startsWith('/import') ? { code: 200, num_records_imported: 1, status: 'OK' } : { ok: true };
  return { status: 200, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
}

let tokensIssued = 0;
/** Everything the director logged, at debug level. */
const logLines: string[] = [];

function workspaceJson(sinkUrl: string): string {
  const dest = (id: string, type: string, settings: object, subscriptions: object[]) => ({ id, name: id, type, settings, subscriptions });
  return JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] }],
    destinations: [
      dest('wh', 'actions-webhook', { sharedSecret: { $env: 'H26_WEBHOOK_SECRET' } }, [
        {
          id: 'send',
          name: 'send',
          action: 'send',
          subscribe: 'type = "track"',
          mapping: { url: `${sinkUrl}/wh`, data: { '@path': '$.' } },
        },
        {
          id: 'batch',
          name: 'batch',
          action: 'send',
          subscribe: 'type = "track"',
          mapping: { url: `${sinkUrl}/whb`, data: { '@path': '$.properties' }, enable_batching: true, batch_size: 10 },
        },
      ]),
      dest('amp', 'actions-amplitude', { apiKey: { $env: 'H26_AMPLITUDE_API_KEY' }, secretKey: { $env: 'H26_AMPLITUDE_SECRET' } }, [
        { id: 'log', name: 'log', action: 'logEvent', subscribe: 'type = "track"', mapping: {} },
      ]),
      dest('mix', 'actions-mixpanel', { projectToken: { $env: 'H26_MIXPANEL_TOKEN' }, apiSecret: { $env: 'H26_MIXPANEL_SECRET' } }, [
        {
          id: 'track',
          name: 'track',
          action: 'trackEvent',
          subscribe: 'type = "track"',
          mapping: { enable_batching: true, batch_size: 50 },
        },
      ]),
      dest('slack', 'actions-slack', {}, [
        {
          id: 'post',
          name: 'post',
          action: 'postToChannel',
          subscribe: 'type = "track"',
          mapping: {
            url: `https://hooks.slack.com${SLACK_PATH}`,
            text: { '@template': '{{properties.name}} bought {{properties.item}} ({{properties.marker}})' },
          },
        },
      ]),
      dest(
        'hub',
        'actions-hubspot-cloud',
        {
          portalId: '4242',
          oauth: {
            refreshToken: { $env: 'H26_HUBSPOT_REFRESH' },
            clientId: 'hs-client',
            clientSecret: { $env: 'H26_HUBSPOT_CLIENT_SECRET' },
          },
        },
        [
          {
            id: 'behavioral',
            name: 'behavioral',
            action: 'sendCustomBehavioralEvent',
            subscribe: 'type = "track"',
            mapping: { eventName: 'pe4242_order_completed', properties: { '@path': '$.properties' } },
          },
          {
            id: 'contacts',
            name: 'contacts',
            action: 'upsertContact',
            subscribe: 'type = "track"',
            mapping: {
              email: { '@path': '$.properties.email' },
              firstname: { '@path': '$.properties.name' },
              enable_batching: true,
              batch_size: 10,
            },
          },
        ],
      ),
    ].map((d) => ({ ...d, limits: { maxConcurrency: 20 } })),
    connections: ['wh', 'amp', 'mix', 'slack', 'hub'].map((destinationId) => ({ sourceId: 'web', destinationId })),
  });
}

const TIMESTAMP = '2026-12-05T01:02:03.456Z';
function event(messageId: string, properties: Record<string, unknown> = {}) {
  return {
    type: 'track',
    event: 'Order Completed',
    messageId,
    userId: 'user-1',
    anonymousId: 'anon-1',
    timestamp: TIMESTAMP,
    properties: { name: 'Ada', item: 'tea', revenue: 12.5, email: 'ada@example.com', marker: messageId, ...properties },
    context: { library: { name: 'analytics-node', version: '2.0.0' } },
  };
}

function job(messageId: string, destinationId: string, subscriptionId: string, properties: Record<string, unknown> = {}) {
  return { sourceId: 'web', messageId, destinationId, subscriptionId, payload: event(messageId, properties) };
}

const FINAL = new Set(['succeeded', 'discarded', 'archived']);

/** Waits for the jobs with these message ids to be final; their transitions. */
async function finalRows(messageIds: string[]) {
  let found: Map<string, Awaited<ReturnType<typeof historyOf>> extends Map<string, infer V> ? V : never> = new Map();
  await waitFor(async () => {
    const history = await historyOf(env, database);
    found = new Map([...history.values()].filter((h) => messageIds.includes(h.messageId)).map((h) => [h.messageId, h]));
    return messageIds.every((id) => FINAL.has(found.get(id)?.states.at(-1) ?? ''));
  }, 30_000);
  return found;
}

const requestsWith = (s: HttpSink, marker: string) => s.requests.filter((r) => r.body.includes(marker));

beforeAll(async () => {
  ({ env, sink } = suite);
  Object.assign(process.env, secrets);
  certs = makeTestCertificates(PARTNER_HOSTS);
  partners = await new HttpSink({ tls: { key: certs.key, cert: certs.cert } }).start();
  for (const path of ['/2/httpapi', '/import', SLACK_PATH, '/events/v3/send']) partners.route(path, answer);
  sink.route('/wh', answer).route('/whb', answer);
  // HubSpot's contact batch API: none of the read contacts exists (207 with OBJECT_NOT_FOUND), so all are created.
  partners.route('/crm/v3/objects/contacts/batch/read', (req) => {
    const ids = (JSON.parse(req.body) as { inputs: Array<{ id: string }> }).inputs.map((i) => i.id);
    const error = { status: 'error', category: 'OBJECT_NOT_FOUND', message: 'Could not get some CONTACT objects', context: { ids } };
    return {
      status: 207,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'COMPLETE', results: [], numErrors: 1, errors: [error] }),
    };
  });
  partners.route('/crm/v3/objects/contacts/batch/create', () => ({
    status: 201,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'COMPLETE', results: [] }),
  }));
  partners.route('/oauth/v1/token', () => {
    tokensIssued += 1;
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ access_token: `hs-access-${tokensIssued}` }),
    };
  });
  const ws: Workspace = parseWorkspace(workspaceJson(sink.url), { format: 'json', env: process.env, check: actionDestinationIssues });
  database = (await env.provision('act')).database;
  const settings = testSettings(env.prefix, {
    DIRECTOR_ACTIONS_CA_FILE: certs.caFile,
    DIRECTOR_ACTIONS_CONNECT_TO: `127.0.0.1:${new URL(partners.url).port}`,
    // The partner that never answers is given up on after this; the other answers take a few ms,
    // but a loaded CI machine can stall a second or two (a timeout there would change their histories).
    DIRECTOR_ACTIONS_TIMEOUT_MS: 4_000,
  });
  const logger = createLogger({
    name: 'director-actions-test',
    level: 'debug',
    destination: { write: (line: string) => void logLines.push(line) },
  });
  director = env.director(settings, { workspace: () => ws, publisher: new MemoryPublisher(), logger });
  await director.start();
  await waitFor(() => director.isReady);
});

afterAll(async () => {
  if (!stopped) await director?.stop();
  await partners?.close();
  certs?.remove();
});

describe('action destinations in the director', () => {
  it('Webhook (actions): the mapped event, signed with the shared secret', async () => {
    expect((await postJobs(director.url!, [job('wh-1', 'wh', 'send')])).status).toBe(200);
    const rows = await finalRows(['wh-1']);
    expect(rows.get('wh-1')!.states).toEqual(['executing', 'succeeded']);
    const [req] = requestsWith(sink, 'wh-1');
    expect(req.path).toBe('/wh');
    expect(req.method).toBe('POST');
    expect(req.headers['user-agent']).toBe('Segment (Actions)');
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual(event('wh-1'));
    expect(req.headers['x-signature']).toBe(crypto.createHmac('sha1', secrets.H26_WEBHOOK_SECRET).update(req.body).digest('hex'));
  });

  it('Webhook (actions) batched: jobs due together go in one call, each job with its own outcome', async () => {
    const ids = ['whb-1', 'whb-2', 'whb-3', 'whb-4'];
    await postJobs(
      director.url!,
      ids.map((id) => job(id, 'wh', 'batch')),
    );
    const rows = await finalRows(ids);
    for (const id of ids) expect(rows.get(id)!.states).toEqual(['executing', 'succeeded']);
    const reqs = sink.requests.filter((r) => r.path === '/whb' && ids.some((id) => r.body.includes(id)));
    expect(reqs.length).toBeLessThan(ids.length);
    const sent = reqs.flatMap((r) => JSON.parse(r.body) as Array<Record<string, unknown>>);
    expect(sent.map((p) => p.marker).sort()).toEqual(ids);
    expect(sent[0]).toEqual(event(String(sent[0].marker)).properties);
  });

  it('a batched action: an event its mapping cannot make valid is discarded alone, the rest of the batch delivered', async () => {
    const ids = ['mixv-1', 'mixv-2', 'mixv-3'];
    const jobs = ids.map((id) => job(id, 'mix', 'track'));
    delete (jobs[1].payload as { event?: string }).event; // trackEvent requires the event name
    await postJobs(director.url!, jobs);
    const rows = await finalRows(ids);
    // States with their status and error, so that a failure shows what happened.
    const outcome = (id: string) => rows.get(id)!.rows.map((r) => [r.to_state, r.http_status, r.error]);
    expect(outcome('mixv-1')).toEqual([
      ['executing', null, null],
      ['succeeded', 200, null],
    ]);
    expect(outcome('mixv-3')).toEqual([
      ['executing', null, null],
      ['succeeded', 200, null],
    ]);
    expect(outcome('mixv-2')).toEqual([
      ['executing', null, null],
      ['discarded', 400, 'HTTP 400'],
    ]);
    expect(String(rows.get('mixv-2')!.rows[1].response_excerpt)).toContain('event');
    const sent = partners.requests
      .filter((r) => r.path === '/import' && ids.some((id) => r.body.includes(id)))
      .flatMap((r) => JSON.parse(r.body) as Array<{ properties: Record<string, unknown> }>);
    expect(sent.map((e) => e.properties.marker).sort()).toEqual(['mixv-1', 'mixv-3']);
  });

  it("Mixpanel batched: the partner's per-record failures (failed_records) discard those jobs alone", async () => {
    const ids = ['mixms-1', 'mixms-2', 'mixms-3'];
    // Mixpanel's /import answer when some records of a batch are invalid (strict mode).
    scripted.set('mixms-2', [
      (req) => {
        const index = (JSON.parse(req.body) as Array<{ properties: { marker: string } }>).findIndex(
          (e) => e.properties.marker === 'mixms-2',
        );
        const failed = { index, $insert_id: 'mixms-2', field: 'properties.time', message: "'properties.time' is invalid" };
        return {
          status: 400,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            code: 400,
            error: 'some data points in the request failed',
            failed_records: [failed],
            status: 'Bad Request',
          }),
        };
      },
    ]);
    // All three in one call (they are due together and the batch holds 50).
    await postJobs(
      director.url!,
      ids.map((id) => job(id, 'mix', 'track')),
    );
    const rows = await finalRows(ids);
    const outcome = (id: string) => rows.get(id)!.rows.map((r) => [r.to_state, r.http_status]);
    expect(outcome('mixms-2')).toEqual([
      ['executing', null],
      ['discarded', 400],
    ]);
    expect(String(rows.get('mixms-2')!.rows[1].response_excerpt)).toContain("'properties.time' is invalid");
    // The others of that call succeeded; one sent in a later call (not in the answer's batch) too.
    for (const id of ['mixms-1', 'mixms-3'])
      expect(outcome(id)).toEqual([
        ['executing', null],
        ['succeeded', 200],
      ]);
  });

  it('Amplitude: logEvent with the default mappings', async () => {
    await postJobs(director.url!, [job('amp-1', 'amp', 'log')]);
    expect((await finalRows(['amp-1'])).get('amp-1')!.states).toEqual(['executing', 'succeeded']);
    const [req] = requestsWith(partners, 'amp-1');
    expect(req.headers.host).toBe('api2.amplitude.com');
    expect(req.path).toBe('/2/httpapi');
    expect(req.method).toBe('POST');
    const body = JSON.parse(req.body);
    expect(body.api_key).toBe(secrets.H26_AMPLITUDE_API_KEY);
    expect(body.events).toHaveLength(1);
    const [e] = body.events;
    expect(e.event_type).toBe('Order Completed');
    expect(e.user_id).toBe('user-1');
    expect(e.device_id).toBe('anon-1');
    expect(e.time).toBe(Date.parse(TIMESTAMP));
    expect(e.event_properties).toEqual(event('amp-1').properties);
    expect(e.library).toBe('analytics-node'); // $.context.library.name by default
  });

  it('Amplitude: a partner that does not answer within the timeout is retried (no status, the error kept)', async () => {
    scripted.set('amp-hang', ['hang']);
    await postJobs(director.url!, [job('amp-hang', 'amp', 'log')]);
    const rows = (await finalRows(['amp-hang'])).get('amp-hang')!;
    expect(rows.states).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
    expect(rows.rows[1].http_status).toBeNull();
    expect(String(rows.rows[1].error)).toMatch(/^timeout: /);
    expect(requestsWith(partners, 'amp-hang')).toHaveLength(2);
  });

  it('Mixpanel: trackEvent batched, Basic auth with the API secret, one outcome per job', async () => {
    const ids = ['mix-1', 'mix-2', 'mix-3'];
    await postJobs(
      director.url!,
      ids.map((id) => job(id, 'mix', 'track')),
    );
    const rows = await finalRows(ids);
    for (const id of ids) expect(rows.get(id)!.states).toEqual(['executing', 'succeeded']);
    const reqs = partners.requests.filter((r) => r.path === '/import' && ids.some((id) => r.body.includes(id)));
    expect(reqs.length).toBeLessThan(ids.length); // at least two of the three in one call
    const req = reqs[0];
    expect(req.headers.host).toBe('api.mixpanel.com');
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from(`${secrets.H26_MIXPANEL_SECRET}:`).toString('base64')}`);
    const sent = reqs.flatMap((r) => JSON.parse(r.body) as Array<{ event: string; properties: Record<string, unknown> }>);
    expect(sent.map((e) => e.properties.marker).sort()).toEqual(ids);
    for (const e of sent) {
      expect(e.event).toBe('Order Completed');
      expect(e.properties.distinct_id).toBe('user-1');
      expect(e.properties.$insert_id).toBe(e.properties.marker);
      expect(e.properties.time).toBe(Date.parse(TIMESTAMP));
      expect(e.properties.name).toBe('Ada');
    }
  });

  it('Slack: postToChannel with a @template text', async () => {
    await postJobs(director.url!, [job('slack-1', 'slack', 'post', { name: 'Grace' })]);
    expect((await finalRows(['slack-1'])).get('slack-1')!.states).toEqual(['executing', 'succeeded']);
    const req = partners.requests.find((r) => r.path === SLACK_PATH && r.body.includes('Grace'))!;
    expect(req.headers.host).toBe('hooks.slack.com');
    const body = JSON.parse(req.body);
    expect(body.text).toBe('Grace bought tea (slack-1)');
    expect(body.username).toBe('Segment');
  });

  it('HubSpot: gets an access token with the refresh token, and refreshes it on a 401', async () => {
    await postJobs(director.url!, [job('hub-1', 'hub', 'behavioral')]);
    expect((await finalRows(['hub-1'])).get('hub-1')!.states).toEqual(['executing', 'succeeded']);
    const token = partners.requests.filter((r) => r.path === '/oauth/v1/token');
    expect(token).toHaveLength(1);
    expect(Object.fromEntries(new URLSearchParams(token[0].body))).toEqual({
      refresh_token: secrets.H26_HUBSPOT_REFRESH,
      client_id: 'hs-client',
      client_secret: secrets.H26_HUBSPOT_CLIENT_SECRET,
      grant_type: 'refresh_token',
    });
    const [req] = requestsWith(partners, 'hub-1');
    expect(req.headers.host).toBe('api.hubapi.com');
    expect(req.path).toBe('/events/v3/send');
    expect(req.headers.authorization).toBe('Bearer hs-access-1');
    const body = JSON.parse(req.body);
    expect(body.eventName).toBe('pe4242_order_completed');
    expect(body.email).toBe('ada@example.com');
    expect(body.occurredAt).toBe(TIMESTAMP);
    expect(body.properties).toMatchObject({ name: 'Ada', item: 'tea', marker: 'hub-1' });

    // The partner no longer takes that token: refreshed once, the call made again, one attempt.
    scripted.set('hub-2', [{ status: 401, body: '{"status":"error","category":"EXPIRED_AUTHENTICATION"}' }]);
    await postJobs(director.url!, [job('hub-2', 'hub', 'behavioral')]);
    expect((await finalRows(['hub-2'])).get('hub-2')!.states).toEqual(['executing', 'succeeded']);
    expect(requestsWith(partners, 'hub-2').map((r) => r.headers.authorization)).toEqual(['Bearer hs-access-1', 'Bearer hs-access-2']);
    expect(tokensIssued).toBe(2);
  });

  it('HubSpot batched: upsertContact reads then creates the contacts in one call each; an invalid email is discarded alone', async () => {
    // Before the retry cases below: a 429 there slows the destination down (adaptive rate), and
    // jobs started one by one would each go alone.
    const ids = ['hubb-1', 'hubb-2', 'hubb-3', 'hubb-4'];
    const jobs = ids.map((id) =>
      job(id, 'hub', 'contacts', { email: id === 'hubb-2' ? 'not an email' : `${id.toUpperCase()}@Example.com` }),
    );
    await postJobs(director.url!, jobs);
    const rows = await finalRows(ids);
    const outcome = (id: string) => rows.get(id)!.rows.map((r) => [r.to_state, r.http_status]);
    expect(outcome('hubb-2')).toEqual([
      ['executing', null],
      ['discarded', 400],
    ]);
    expect(String(rows.get('hubb-2')!.rows[1].response_excerpt)).toContain('email');
    for (const id of ['hubb-1', 'hubb-3', 'hubb-4'])
      expect(outcome(id)).toEqual([
        ['executing', null],
        ['succeeded', 200],
      ]);
    const emails = ['hubb-1@example.com', 'hubb-3@example.com', 'hubb-4@example.com'];
    const mine = (path: string) => partners.requests.filter((r) => r.path === path && emails.some((e) => r.body.includes(e)));
    const reads = mine('/crm/v3/objects/contacts/batch/read');
    const creates = mine('/crm/v3/objects/contacts/batch/create');
    // Batched: at least two in one call (the first job may start alone, with its insert).
    expect(creates.length).toBeLessThan(emails.length);
    for (const req of [...reads, ...creates]) {
      expect(req.headers.host).toBe('api.hubapi.com');
      expect(req.headers.authorization).toMatch(/^Bearer hs-access-\d+$/);
    }
    const readIds = reads.flatMap((r) => JSON.parse(r.body).inputs.map((i: { id: string }) => i.id));
    expect(readIds.sort()).toEqual(emails);
    expect(JSON.parse(reads[0].body)).toMatchObject({
      idProperty: 'email',
      properties: ['email', 'lifecyclestage', 'hs_additional_emails'],
    });
    const created = creates.flatMap((r) => JSON.parse(r.body).inputs as Array<{ properties: Record<string, unknown> }>);
    expect(created.map((c) => c.properties.email).sort()).toEqual(emails);
    for (const c of created) expect(c.properties.firstname).toBe('Ada');
  });

  const cases: Array<[string, string, string]> = [
    ['wh', 'send', 'webhook'],
    ['amp', 'log', 'amplitude'],
    ['mix', 'track', 'mixpanel'],
    ['slack', 'post', 'slack'],
    ['hub', 'behavioral', 'hubspot'],
  ];
  it.each(cases)('%s: a 5xx and a 429 with Retry-After are retried, a 4xx is discarded with its response', async (dest, sub, name) => {
    const [m503, m429, m400] = ['r503', 'r429', 'r400'].map((k) => `${name}-${k}`);
    scripted.set(m503, [{ status: 503, body: 'try later' }]);
    scripted.set(m429, [{ status: 429, headers: { 'retry-after': '1' }, body: 'slow down' }]);
    scripted.set(m400, [{ status: 400, body: `{"error":"bad field ${name}"}` }]);
    // One job at a time: a batched action would put them in one call.
    for (const id of [m503, m429, m400]) {
      await postJobs(director.url!, [job(id, dest, sub)]);
      await finalRows([id]);
    }
    const rows = await finalRows([m503, m429, m400]);
    expect(rows.get(m503)!.states).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
    expect(rows.get(m503)!.rows[1].http_status).toBe(503);
    expect(rows.get(m429)!.states).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
    const [, waiting, again] = rows.get(m429)!.rows;
    expect(waiting.http_status).toBe(429);
    expect(new Date(again.at).getTime() - new Date(waiting.at).getTime()).toBeGreaterThanOrEqual(950);
    expect(rows.get(m400)!.states).toEqual(['executing', 'discarded']);
    expect(rows.get(m400)!.rows[1].http_status).toBe(400);
    expect(String(rows.get(m400)!.rows[1].response_excerpt)).toContain(`bad field ${name}`);
  });

  it('no secret, nor an access token obtained by refresh, in any log line', async () => {
    // Every test above ran on this director; a stop logs its drain and release too.
    stopped = true;
    await director.stop();
    expect(logLines.length).toBeGreaterThan(0);
    const text = logLines.join('');
    for (const value of [...Object.values(secrets), 'hs-access-1', 'hs-access-2']) expect(text).not.toContain(value);
  });
});
