import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { createAdminApp, HttpError, pageCursor, pageRequest, startAdminServer, takePage, type RunningServer } from './index';

const TOKEN = 'admin-int-token-0123456789abcdef';
const bearer = { Authorization: `Bearer ${TOKEN}` };
const basic = (userPass: string) => ({ Authorization: `Basic ${Buffer.from(userPass).toString('base64')}` });

type ErrorAnswer = { error: { code: string; message: string } };

/** GET with a raw request target (fetch would normalise `..` and encoded slashes away). */
function rawGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request({ host: target.hostname, port: target.port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admin server over HTTP', () => {
  const lines: string[] = [];
  const logger = createLogger({ name: 'admin-test', level: 'info', destination: { write: (line: string) => lines.push(line) } });
  const USERS = Array.from({ length: 25 }, (_, i) => ({ id: `u-${String(i).padStart(2, '0')}` }));
  let assetsDir: string;
  let srv: RunningServer;

  beforeAll(async () => {
    assetsDir = mkdtempSync(join(tmpdir(), 'admin-assets-'));
    writeFileSync(join(assetsDir, 'index.html'), '<!doctype html><title>Event Delivery</title>');
    writeFileSync(join(assetsDir, 'app.js'), 'console.log("delivery");');
    srv = await startAdminServer({
      service: 'testsvc',
      port: 0,
      host: '127.0.0.1',
      token: TOKEN,
      logger,
      jsonLimitBytes: 1000,
      assets: [{ path: '/ui', dir: assetsDir }],
      routes: (app) => {
        app.get('/v1/users', (req, res) => {
          const page = pageRequest(req.query, { defaultLimit: 10, maxLimit: 20 });
          const after = page.after as { id: string } | undefined;
          const rows = USERS.filter((u) => !after || u.id > after.id).slice(0, page.limit + 1);
          const { items, next } = takePage(rows, page.limit, (last) => ({ id: last.id }));
          res.json({ data: items, cursor: pageCursor(req.originalUrl, next) });
        });
        app.post('/v1/echo', (req, res) => {
          res.json(req.body);
        });
        app.get('/v1/conflict', () => {
          throw new HttpError(409, 'conflict', 'already running');
        });
        app.get('/v1/boom', () => {
          throw new Error(`database said no to ${TOKEN}`);
        });
      },
    });
  });
  afterAll(async () => {
    await srv?.close();
    rmSync(assetsDir, { recursive: true, force: true });
  });

  it('refuses requests without the token: 401, a JSON error and a Basic challenge', async () => {
    for (const headers of [
      {},
      { Authorization: 'Bearer wrong-token-0123456789abcdef' },
      basic(`${TOKEN}:password`),
      basic(`wrong:`),
      { Authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    ]) {
      const res = await fetch(`${srv.url}/v1/users`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="testsvc admin", charset="UTF-8"');
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await res.json()) as ErrorAnswer).error).toEqual({
        code: 'authentication_error',
        message: expect.stringContaining('admin token'),
      });
    }
    // An unknown path and an asset are refused alike: nothing tells a stranger what exists.
    expect((await fetch(`${srv.url}/nowhere`)).status).toBe(401);
    expect((await fetch(`${srv.url}/ui/app.js`)).status).toBe(401);
    // The body of a refused caller is never parsed: 401, not a 400 for its bad JSON.
    const post = await fetch(`${srv.url}/v1/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(post.status).toBe(401);
    expect(await registry.metrics()).toMatch(/cdp_http_unauthorized_total\{server="admin"\} 8/);
  });

  it("accepts the token as Bearer and in Segment's Basic form (token as user name, empty password)", async () => {
    for (const headers of [bearer, basic(`${TOKEN}:`), { Authorization: `bearer ${TOKEN}` }]) {
      const res = await fetch(`${srv.url}/v1/users?limit=1`, { headers });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { data: unknown[] }).data).toEqual([{ id: 'u-00' }]);
    }
    const echo = await fetch(`${srv.url}/v1/echo`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(await echo.json()).toEqual({ a: 1 });
  });

  it('pages with limit and next, answering cursor { url, has_more, next }', async () => {
    const seen: string[] = [];
    const urls: string[] = [];
    let next = '';
    let pages = 0;
    do {
      const path = `/v1/users?limit=10${next ? `&next=${next}` : ''}`;
      const res = await fetch(`${srv.url}${path}`, { headers: bearer });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: { id: string }[]; cursor: { url: string; has_more: boolean; next: string } };
      seen.push(...body.data.map((u) => u.id));
      urls.push(body.cursor.url);
      expect(body.cursor.has_more).toBe(body.cursor.next !== '');
      next = body.cursor.next;
      pages += 1;
    } while (next && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(USERS.map((u) => u.id));
    expect(urls[0]).toBe('/v1/users?limit=10');
    const defaults = (await (await fetch(`${srv.url}/v1/users`, { headers: bearer })).json()) as { data: unknown[] };
    expect(defaults.data).toHaveLength(10);
    for (const query of ['limit=0', 'limit=21', 'limit=x', 'next=%21%21', 'limit=1&limit=2']) {
      const res = await fetch(`${srv.url}/v1/users?${query}`, { headers: bearer });
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorAnswer).error.code).toBe('invalid_request_error');
    }
  });

  it('answers JSON for unknown paths, HttpErrors, thrown errors, bad and oversize bodies', async () => {
    const missing = await fetch(`${srv.url}/v1/nothing`, { headers: bearer });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as ErrorAnswer).error.code).toBe('not_found');
    const conflict = await fetch(`${srv.url}/v1/conflict`, { headers: bearer });
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toEqual({ error: { code: 'conflict', message: 'already running' } });
    const boom = await fetch(`${srv.url}/v1/boom`, { headers: bearer });
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ error: { code: 'internal', message: 'internal error' } });
    const json = { ...bearer, 'content-type': 'application/json' };
    expect((await fetch(`${srv.url}/v1/echo`, { method: 'POST', headers: json, body: '{nope' })).status).toBe(400);
    expect(
      (await fetch(`${srv.url}/v1/echo`, { method: 'POST', headers: json, body: JSON.stringify({ a: 'x'.repeat(2000) }) })).status,
    ).toBe(413);
  });

  it('serves static assets behind the token, JSON 404 for missing files, nothing outside the directory', async () => {
    const page = await fetch(`${srv.url}/ui/`, { headers: basic(`${TOKEN}:`) });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('Event Delivery');
    const script = await fetch(`${srv.url}/ui/app.js`, { headers: bearer });
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect(await script.text()).toBe('console.log("delivery");');
    const missing = await fetch(`${srv.url}/ui/missing.js`, { headers: bearer });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as ErrorAnswer).error.code).toBe('not_found');
    for (const path of ['/ui/../package.json', '/ui/..%2f..%2fetc%2fpasswd', '/ui/%2e%2e/%2e%2e/etc/passwd']) {
      const res = await rawGet(srv.url, path, bearer);
      expect([403, 404]).toContain(res.status);
      expect(JSON.parse(res.body)).toEqual({ error: expect.objectContaining({ code: expect.any(String) }) });
    }
  });

  it('logs one line per request with an id, a redacted query and never the token', async () => {
    lines.length = 0;
    const res = await fetch(`${srv.url}/v1/users?limit=2&token=${TOKEN}&api_key=k-123456`, {
      headers: { ...bearer, 'X-Request-Id': 'req-abc-1' },
    });
    expect(res.headers.get('request-id')).toBe('req-abc-1');
    expect((await fetch(`${srv.url}/v1/boom`, { headers: bearer })).headers.get('request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await fetch(`${srv.url}/v1/users`, { headers: basic('intruder:') });
    const logged = lines.map(
      (l) => JSON.parse(l) as { msg: string; level: string; req?: { id: string; path: string; query: string }; res?: { status: number } },
    );
    const requests = logged.filter((l) => l.req);
    expect(requests.map((l) => [l.req?.path, l.res?.status])).toEqual([
      ['/v1/users', 200],
      ['/v1/boom', 500],
      ['/v1/users', 401],
    ]);
    expect(requests[0].req).toEqual({
      id: 'req-abc-1',
      method: 'GET',
      path: '/v1/users',
      query: '?limit=2&token=%5BREDACTED%5D&api_key=%5BREDACTED%5D',
    });
    expect(requests[1].level).toBe('warn');
    // The thrown error is logged (its text too), the token inside it masked.
    expect(logged.some((l) => l.level === 'error' && JSON.stringify(l).includes('database said no to [REDACTED]'))).toBe(true);
    const all = lines.join('\n');
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain(Buffer.from(`${TOKEN}:`).toString('base64'));
    expect(all).not.toContain('k-123456');
    expect(all).not.toContain('authorization');
  });

  it('refuses to build with a missing assets directory, naming it', () => {
    expect(() =>
      createAdminApp({
        service: 's',
        token: TOKEN,
        logger,
        assets: [{ path: '/ui', dir: '/nonexistent/assets' }],
        routes: () => undefined,
      }),
    ).toThrow(/admin assets directory \/nonexistent\/assets \(for \/ui\) does not exist/);
  });
});
