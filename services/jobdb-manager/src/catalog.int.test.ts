// The destination catalog route on an admin server (libs/http) on 127.0.0.1, as jobdb-manager mounts it.
import { startAdminServer, type RunningServer } from '@cdp/http';
import { createLogger } from '@cdp/log';
import { catalogRoutes } from './catalog';

const TOKEN = 'catalog-test-admin-token-0123456789';
let server: RunningServer;
const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });

beforeAll(async () => {
  server = await startAdminServer({
    service: 'jobdb-manager',
    port: 0,
    host: '127.0.0.1',
    token: TOKEN,
    logger: createLogger({ name: 'catalog-test', level: 'silent' }),
    routes: catalogRoutes,
  });
});
afterAll(() => server.close());

describe('destination catalog on the admin API', () => {
  it('lists the webhook and each action destination with its settings and actions, from the definitions', async () => {
    const res = await get('/v1/catalog/destinations');
    expect(res.status).toBe(200);
    const { data } = (await res.json()) as {
      data: Array<{
        type: string;
        settings: Array<{ name: string; required: boolean }>;
        actions: Array<{ action: string; batching: boolean; fields: Array<{ name: string; required: boolean; default?: unknown }> }>;
      }>;
    };
    expect(data.map((e) => e.type)).toEqual([
      'webhook',
      'actions-webhook',
      'actions-amplitude',
      'actions-mixpanel',
      'actions-slack',
      'actions-hubspot-cloud',
    ]);
    const mixpanel = data.find((e) => e.type === 'actions-mixpanel')!;
    expect(mixpanel.settings.filter((s) => s.required).map((s) => s.name)).toEqual(['projectToken', 'apiSecret']);
    const trackEvent = mixpanel.actions.find((a) => a.action === 'trackEvent')!;
    expect(trackEvent.batching).toBe(true);
    expect(trackEvent.fields.find((f) => f.name === 'event')).toMatchObject({ required: true, default: { '@path': '$.event' } });
  });

  it('one type; 404 as JSON for an unknown one; 401 without the token', async () => {
    const slack = await get('/v1/catalog/destinations/actions-slack');
    expect(((await slack.json()) as { actions: Array<{ action: string }> }).actions.map((a) => a.action)).toEqual(['postToChannel']);
    const missing = await get('/v1/catalog/destinations/actions-nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { message: 'no destination type actions-nope' } });
    expect((await fetch(`http://127.0.0.1:${server.port}/v1/catalog/destinations`)).status).toBe(401);
  });
});
