import { request } from 'node:http';
import { createLogger } from '@cdp/log';
import { counter, registry } from '@cdp/metrics';
import { createApp, finish, HttpError, listen, Router, startOpsServer } from './index';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('createApp', () => {
  it('answers JSON errors for bad JSON, oversize bodies, HttpError and unknown routes', async () => {
    const app = createApp({ name: 'public', logger, jsonLimitBytes: 100 });
    app.post('/echo', (req, res) => {
      res.json(req.body);
    });
    app.get('/teapot', () => {
      throw new HttpError(418, 'teapot', 'short and stout');
    });
    finish(app, logger);
    const srv = await listen(app, 0, '127.0.0.1');
    try {
      const post = (body: string) => fetch(`${srv.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(await (await post('{"a":1}')).json()).toEqual({ a: 1 });
      const bad = await post('{nope');
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({ error: { code: 'invalid_json', message: expect.any(String) } });
      const big = await post(JSON.stringify({ a: 'x'.repeat(200) }));
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
      const tea = await fetch(`${srv.url}/teapot`);
      expect(tea.status).toBe(418);
      expect(((await tea.json()) as { error: unknown }).error).toEqual({ code: 'teapot', message: 'short and stout' });
      const missing = await fetch(`${srv.url}/nowhere`);
      expect(missing.status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});

describe('Router', () => {
  it('matches static and :param routes leniently, passes the query, and answers JSON 404/400/500', async () => {
    const seen: unknown[] = [];
    const router = new Router('routertest', logger)
      .on('POST', '/v1/track', (_req, res, ctx) => {
        seen.push(ctx);
        res.end('track');
      })
      .on('GET', '/v1/projects/:key/settings', (_req, res, { params }) => {
        res.end(params.key);
      })
      .on('GET', '/boom', async () => {
        throw new Error('kaput');
      });
    const srv = await listen(router.listener, 0, '127.0.0.1');
    try {
      const text = async (path: string, method = 'GET') => {
        const res = await fetch(`${srv.url}${path}`, { method });
        return `${res.status} ${await res.text()}`;
      };
      expect(await text('/v1/track', 'POST')).toBe('200 track');
      expect(await text('/V1/Track/?x=1', 'POST')).toBe('200 track');
      expect(seen).toEqual([
        { params: {}, search: '' },
        { params: {}, search: 'x=1' },
      ]);
      expect(await text('/v1/track')).toMatch(/^404 .*not_found/);
      expect(await text('/v1/projects/wk%20one/settings')).toBe('200 wk one');
      expect(await text('/v1/projects/%E0%A4%A/settings')).toMatch(/^400 .*bad_request/);
      expect(await text('/v1/projects//settings')).toMatch(/^404/);
      expect((await fetch(`${srv.url}/v1/projects/k/settings`, { method: 'HEAD' })).status).toBe(200);
      expect(await text('/boom')).toMatch(/^500 .*internal/);
      // Absolute-form request target, as some proxies send it.
      const absolute = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: 'http://tracking.example/v1/track?y=2' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(absolute).toBe(200);
      expect(seen[2]).toEqual({ params: {}, search: 'y=2' });
      const metrics = await registry.metrics();
      expect(metrics).toMatch(/cdp_http_requests_total\{server="routertest",route="\/v1\/track",method="POST",status_class="2xx"\} 3/);
      expect(metrics).toMatch(/cdp_http_requests_total\{server="routertest",route="unmatched",method="GET",status_class="4xx"\} 3/);
    } finally {
      await srv.close();
    }
  });
});

describe('ops server', () => {
  it('serves healthz, readyz from checks (503 when one fails or draining) and metrics', async () => {
    let dependencyUp = true;
    const ops = await startOpsServer({
      port: 0,
      host: '127.0.0.1',
      logger,
      checks: [{ name: 'kafka', check: () => dependencyUp }],
    });
    try {
      counter({ name: 'cdp_ops_test_total', help: 'x' }).inc();
      expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${ops.url}/readyz`)).status).toBe(200);
      dependencyUp = false;
      const notReady = await fetch(`${ops.url}/readyz`);
      expect(notReady.status).toBe(503);
      expect(((await notReady.json()) as { checks: { kafka: { ok: boolean } } }).checks.kafka.ok).toBe(false);
      dependencyUp = true;
      ops.setDraining();
      expect((await fetch(`${ops.url}/readyz`)).status).toBe(503);
      const metrics = await (await fetch(`${ops.url}/metrics`)).text();
      expect(metrics).toContain('cdp_ops_test_total 1');
      expect(metrics).toContain('process_cpu_user_seconds_total');
      expect(metrics).toMatch(/cdp_http_requests_total\{server="ops",route="\/healthz",method="GET",status_class="2xx"\} 1/);
    } finally {
      await ops.close();
    }
  });
});
