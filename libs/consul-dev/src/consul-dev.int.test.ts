/**
 * Consul HTTP API conformance suite. By default it runs against an in-process dev server
 * with short TTLs; with CONSUL_TEST_REAL=1 and CONSUL_HTTP_ADDR=host:port it runs,
 * unchanged, against a real agent (`consul agent -dev`), which is how the double's
 * fidelity is checked. Only behaviour both must share is asserted here.
 */
import { randomUUID } from 'node:crypto';
import Consul from 'consul';
import { z } from 'zod';
import { createLogger } from '@cdp/log';
import { startConsulDevServer, type ConsulDevServer } from './index';

const REAL = process.env.CONSUL_TEST_REAL === '1';
/** Real agents refuse TTLs under 10 s; the dev server is started with a 500 ms minimum. */
const TTL_MS = REAL ? 10_000 : 1_000;
const TTL = `${TTL_MS / 1000}s`;
/** A session may live up to 2 x TTL on a real agent; leave plenty on top. */
const EXPIRY_BOUND_MS = 2 * TTL_MS + 20_000;

/** Consul's field shapes, checked on every answer the `consul` client passes through untyped. */
const kvItem = z.object({
  LockIndex: z.number(),
  Key: z.string(),
  Flags: z.number(),
  Value: z.string().nullable(),
  Session: z.string().optional(),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
});
const sessionInfo = z.looseObject({
  ID: z.string(),
  Name: z.string(),
  Node: z.string(),
  LockDelay: z.number(),
  Behavior: z.string(),
  TTL: z.string(),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
});
const sessionInfos = z.array(sessionInfo);
type KvItem = z.infer<typeof kvItem>;

let server: ConsulDevServer | undefined;
let base: string;
let consul: Consul;
const runPrefix = `cdp-consul-dev-test/${Date.now().toString(36)}-${randomUUID().slice(0, 8)}/`;
const createdSessions: string[] = [];

beforeAll(async () => {
  let host: string;
  let port: number;
  if (REAL) {
    const addr = (process.env.CONSUL_HTTP_ADDR ?? '127.0.0.1:8500').replace(/^https?:\/\//, '');
    const at = addr.lastIndexOf(':');
    host = addr.slice(0, at);
    port = Number(addr.slice(at + 1));
  } else {
    server = await startConsulDevServer({
      port: 0,
      minTtlMs: 500,
      ttlMultiplier: 1,
      logger: createLogger({ name: 'consul-dev', level: 'warn' }),
    });
    host = server.host;
    port = server.port;
  }
  base = `http://${host}:${port}`;
  consul = new Consul({ host, port });
});

afterEach(async () => {
  // Sessions left behind would expire later and write to KV in the middle of other tests.
  await Promise.all(createdSessions.splice(0).map((id) => consul.session.destroy(id)));
});

afterAll(async () => {
  await consul.kv.del({ key: runPrefix, recurse: true });
  consul.destroy();
  await server?.close();
});

let keyCounter = 0;
/** A key nobody else uses, so tests never see each other's writes. */
const uniqueKey = (name: string) => `${runPrefix}${++keyCounter}-${name}`;

async function newSession(opts: { ttl?: string; lockdelay?: string; behavior?: 'release' | 'delete'; name?: string } = {}) {
  const { ID } = await consul.session.create({ name: opts.name ?? 'test', ...opts });
  createdSessions.push(ID);
  return ID;
}

const keyPath = (key: string) => key.split('/').map(encodeURIComponent).join('/');
const http = (path: string, init?: RequestInit) => fetch(`${base}${path}`, init);

async function getKey(key: string): Promise<KvItem | undefined> {
  return kvItem.optional().parse(await consul.kv.get(key));
}

/**
 * The consul client resolves a `false` body as undefined (papi treats a falsy value as
 * "no value"), so results are normalised; raw HTTP checks assert the literal body.
 */
async function kvSet(opts: {
  key: string;
  value: string;
  acquire?: string;
  release?: string;
  cas?: number;
  flags?: number;
}): Promise<boolean> {
  return (await consul.kv.set(opts)) === true;
}

const acquire = (key: string, session: string, value = 'v') => kvSet({ key, value, acquire: session });

/** Follows a key with blocking queries until `done(entry)` holds. */
async function waitForKey(key: string, done: (e: KvItem | undefined) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let index = '0';
  while (Date.now() < deadline) {
    const res = await http(`/v1/kv/${keyPath(key)}?index=${index}&wait=5s`);
    const entry = res.status === 404 ? undefined : z.array(kvItem).parse(await res.json())[0];
    if (done(entry)) return entry;
    index = res.headers.get('x-consul-index') ?? '0';
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting on ${key}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(`Consul HTTP API (${REAL ? 'real agent' : 'consul-dev'})`, () => {
  describe('session locks', () => {
    it('a lock held by A refuses B; LockIndex counts acquisitions', async () => {
      const key = uniqueKey('contend');
      const a = await newSession();
      const b = await newSession();

      expect(await acquire(key, a, 'a1')).toBe(true);
      expect(await getKey(key)).toMatchObject({ Session: a, LockIndex: 1, Value: 'a1' });

      expect(await acquire(key, b)).toBe(false);
      const raw = await http(`/v1/kv/${keyPath(key)}?acquire=${b}`, { method: 'PUT', body: 'b' });
      expect(raw.status).toBe(200);
      expect(await raw.text()).toBe('false');
      // Re-acquiring by the holder updates the value but is not a new acquisition.
      expect(await acquire(key, a, 'a2')).toBe(true);
      expect(await getKey(key)).toMatchObject({ Session: a, LockIndex: 1, Value: 'a2' });

      expect(await kvSet({ key, value: 'x', release: b })).toBe(false);
      expect(await kvSet({ key, value: 'a2', release: a })).toBe(true);
      const released = await getKey(key);
      expect(released?.Session).toBeUndefined();
      expect(released?.LockIndex).toBe(1);

      expect(await acquire(key, b, 'b')).toBe(true);
      expect(await getKey(key)).toMatchObject({ Session: b, LockIndex: 2 });
    });

    it('acquire with an unknown session is a 500 naming the session', async () => {
      const ghost = randomUUID();
      const res = await http(`/v1/kv/${keyPath(uniqueKey('ghost'))}?acquire=${ghost}`, { method: 'PUT', body: 'v' });
      expect(res.status).toBe(500);
      expect(await res.text()).toContain(`invalid session "${ghost}"`);
    });

    it('destroying the holder releases the lock (idempotently)', async () => {
      const key = uniqueKey('destroy');
      const a = await newSession({ lockdelay: '0s' });
      const b = await newSession();
      expect(await acquire(key, a, 'kept')).toBe(true);

      const res = await http(`/v1/session/destroy/${a}`, { method: 'PUT' });
      expect(res.status).toBe(200);
      expect(await res.json()).toBe(true);
      const again = await http(`/v1/session/destroy/${a}`, { method: 'PUT' });
      expect(again.status).toBe(200);

      const entry = await getKey(key);
      expect(entry?.Session).toBeUndefined();
      expect(entry).toMatchObject({ LockIndex: 1, Value: 'kept' });
      expect(await consul.session.info(a)).toBeUndefined();
      expect(await acquire(key, b)).toBe(true);
      expect((await getKey(key))?.LockIndex).toBe(2);
    });

    it('behavior delete deletes held keys when the session goes', async () => {
      const key = uniqueKey('delete');
      const a = await newSession({ behavior: 'delete', lockdelay: '0s' });
      expect(await acquire(key, a)).toBe(true);
      await consul.session.destroy(a);
      expect(await getKey(key)).toBeUndefined();
      expect((await http(`/v1/kv/${keyPath(key)}`)).status).toBe(404);
    });

    it('TTL expiry releases the lock, then lock-delay refuses acquires until it passes', async () => {
      const key = uniqueKey('ttl');
      const a = await newSession({ ttl: TTL, lockdelay: '3s' });
      const b = await newSession({ lockdelay: '0s' });
      expect(await acquire(key, a)).toBe(true);

      const released = await waitForKey(key, (e) => e !== undefined && e.Session === undefined, EXPIRY_BOUND_MS);
      expect(released?.LockIndex).toBe(1);
      expect(await consul.session.info(a)).toBeUndefined();

      // Inside the 3 s window nobody may take the key, not even a valid session.
      expect(await acquire(key, b)).toBe(false);
      let acquired = false;
      const deadline = Date.now() + 30_000;
      while (!acquired && Date.now() < deadline) {
        await sleep(250);
        acquired = await acquire(key, b);
      }
      expect(acquired).toBe(true);
      expect(await getKey(key)).toMatchObject({ Session: b, LockIndex: 2 });
    });

    it('renewals keep a TTL session and its lock alive past the TTL', async () => {
      const key = uniqueKey('renew');
      const a = await newSession({ ttl: TTL });
      expect(await acquire(key, a)).toBe(true);
      const until = Date.now() + 2.5 * TTL_MS;
      while (Date.now() < until) {
        await sleep(TTL_MS / 4);
        const renewed = sessionInfos.parse(await consul.session.renew(a));
        expect(renewed[0].ID).toBe(a);
      }
      expect((await getKey(key))?.Session).toBe(a);
    });

    it('renew of an unknown session is 404 "Session id ... not found"', async () => {
      const ghost = randomUUID();
      const res = await http(`/v1/session/renew/${ghost}`, { method: 'PUT' });
      expect(res.status).toBe(404);
      expect(await res.text()).toBe(`Session id '${ghost}' not found`);
      await expect(consul.session.renew(ghost)).rejects.toMatchObject({ statusCode: 404 });
    });
  });

  describe('session API', () => {
    it('refuses TTLs outside [min, 24h], unparsable TTLs and unknown behaviors', async () => {
      const create = (body: unknown) => http('/v1/session/create', { method: 'PUT', body: JSON.stringify(body) });
      for (const [ttl, nanos] of [
        ['1ms', 1_000_000],
        ['25h', 90_000_000_000_000],
      ] as const) {
        const res = await create({ TTL: ttl });
        expect(res.status).toBe(500);
        expect(await res.text()).toMatch(new RegExp(`Invalid Session TTL '${nanos}', must be between \\[.+=24h0m0s\\]`));
      }
      const garbled = await create({ TTL: 'soon' });
      expect(garbled.status).toBe(500);
      expect(await garbled.text()).toContain("Session TTL 'soon' invalid");
      const behavior = await create({ Behavior: 'keep' });
      expect(behavior.status).toBe(500);
      expect(await behavior.text()).toContain("Invalid Behavior setting 'keep'");
    });

    it('info, list and node report sessions with Consul field shapes', async () => {
      const id = await newSession({ name: 'shape', ttl: TTL, lockdelay: '3s', behavior: 'delete' });
      const info = sessionInfo.parse(await consul.session.info(id));
      expect(info).toMatchObject({ ID: id, Name: 'shape', LockDelay: 3_000_000_000, Behavior: 'delete', TTL });
      expect(typeof info.Node).toBe('string');
      expect(info.CreateIndex).toBeGreaterThan(0);

      const list = sessionInfos.parse(await consul.session.list());
      expect(list.map((s) => s.ID)).toContain(id);
      const onNode = sessionInfos.parse(await consul.session.node(info.Node));
      expect(onNode.map((s) => s.ID)).toContain(id);

      const missing = await http(`/v1/session/info/${randomUUID()}`);
      expect(missing.status).toBe(200);
      expect(await missing.json()).toEqual([]);
      expect(Number(missing.headers.get('x-consul-index'))).toBeGreaterThan(0);
    });

    it('LockDelay numbers under 1000 are seconds', async () => {
      const res = await http('/v1/session/create', { method: 'PUT', body: JSON.stringify({ LockDelay: 2 }) });
      const { ID } = (await res.json()) as { ID: string };
      createdSessions.push(ID);
      expect(sessionInfo.parse(await consul.session.info(ID)).LockDelay).toBe(2_000_000_000);
    });
  });

  describe('KV', () => {
    it('cas: 0 means create-only; otherwise the ModifyIndex must match', async () => {
      const key = uniqueKey('cas');
      expect(await kvSet({ key, value: '1', cas: 0 })).toBe(true);
      expect(await kvSet({ key, value: '2', cas: 0 })).toBe(false);
      const first = (await getKey(key))!;
      expect(await kvSet({ key, value: '2', cas: first.ModifyIndex + 1000 })).toBe(false);
      expect(await kvSet({ key, value: '2', cas: first.ModifyIndex })).toBe(true);
      const second = (await getKey(key))!;
      expect(second.Value).toBe('2');
      expect(second.ModifyIndex).toBeGreaterThan(first.ModifyIndex);
      expect(second.CreateIndex).toBe(first.CreateIndex);

      const stale = await http(`/v1/kv/${keyPath(key)}?cas=${first.ModifyIndex}`, { method: 'DELETE' });
      expect(await stale.json()).toBe(false);
      const current = await http(`/v1/kv/${keyPath(key)}?cas=${second.ModifyIndex}`, { method: 'DELETE' });
      expect(await current.json()).toBe(true);
      expect(await getKey(key)).toBeUndefined();
    });

    it('flags and raw values round-trip', async () => {
      const key = uniqueKey('flags');
      expect(await kvSet({ key, value: 'hello world', flags: 42 })).toBe(true);
      expect(await getKey(key)).toMatchObject({ Flags: 42, Value: 'hello world' });
      const raw = await http(`/v1/kv/${keyPath(key)}?raw`);
      expect(raw.status).toBe(200);
      expect(await raw.text()).toBe('hello world');
    });

    it('recurse, keys and separator list a prefix in key order; recursive delete clears it', async () => {
      const prefix = `${uniqueKey('tree')}/`;
      for (const k of ['b/d', 'a', 'b/c']) await consul.kv.set(`${prefix}${k}`, k);

      const all = z.array(kvItem).parse(await consul.kv.get({ key: prefix, recurse: true }));
      expect(all.map((e) => [e.Key, e.Value])).toEqual([
        [`${prefix}a`, 'a'],
        [`${prefix}b/c`, 'b/c'],
        [`${prefix}b/d`, 'b/d'],
      ]);
      expect(await consul.kv.keys(prefix)).toEqual([`${prefix}a`, `${prefix}b/c`, `${prefix}b/d`]);
      expect(await consul.kv.keys({ key: prefix, separator: '/' })).toEqual([`${prefix}a`, `${prefix}b/`]);

      expect(await consul.kv.del({ key: prefix, recurse: true })).toBe(true);
      expect(await consul.kv.get({ key: prefix, recurse: true })).toBeUndefined();
      const keys404 = await http(`/v1/kv/${keyPath(prefix)}?keys`);
      expect(keys404.status).toBe(404);
    });

    it('404s still carry a non-zero X-Consul-Index and leader headers', async () => {
      const res = await http(`/v1/kv/${keyPath(uniqueKey('missing'))}`);
      expect(res.status).toBe(404);
      const index = res.headers.get('x-consul-index');
      expect(index).not.toBeNull();
      expect(Number(index)).toBeGreaterThan(0);
      expect(res.headers.get('x-consul-knownleader')).toBe('true');
      expect(res.headers.get('x-consul-lastcontact')).not.toBeNull();
    });
  });

  describe('blocking queries', () => {
    it('return as soon as the watched data changes, with a higher index', async () => {
      const key = uniqueKey('block');
      await consul.kv.set(key, 'before');
      const first = await http(`/v1/kv/${keyPath(key)}`);
      const index = Number(first.headers.get('x-consul-index'));

      const blocked = http(`/v1/kv/${keyPath(key)}?index=${index}&wait=60s`);
      await sleep(300);
      await consul.kv.set(key, 'after');
      const res = await blocked;
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('x-consul-index'))).toBeGreaterThan(index);
      const [entry] = z.array(kvItem).parse(await res.json());
      expect(Buffer.from(entry.Value!, 'base64').toString()).toBe('after');
    });

    it('return the unchanged result when wait elapses', async () => {
      const prefix = `${uniqueKey('idle')}/`;
      await consul.kv.set(`${prefix}x`, 'x');
      const first = await http(`/v1/kv/${keyPath(prefix)}?recurse`);
      const index = first.headers.get('x-consul-index');

      const started = Date.now();
      const res = await http(`/v1/kv/${keyPath(prefix)}?recurse&index=${index}&wait=1s`);
      const elapsed = Date.now() - started;
      expect(res.status).toBe(200);
      expect(res.headers.get('x-consul-index')).toBe(index);
      expect(elapsed).toBeGreaterThanOrEqual(500);
      expect(elapsed).toBeLessThan(30_000);
    });

    it('drive the consul client watch (change events with the new value)', async () => {
      const key = uniqueKey('watch');
      const watch = consul.watch({ method: consul.kv.get, options: { key, wait: '10s' } });
      const seen: Array<string | undefined> = [];
      const errors: unknown[] = [];
      watch.on('error', (error: unknown) => errors.push(error));
      try {
        const gotValue = new Promise<void>((resolve) => {
          watch.on('change', (data?: KvItem) => {
            seen.push(data?.Value ?? undefined);
            if (data?.Value === 'hello') resolve();
          });
        });
        await sleep(200);
        await consul.kv.set(key, 'hello');
        await gotValue;
      } finally {
        watch.end();
      }
      expect(seen[0]).toBeUndefined(); // the first answer: key missing (404)
      expect(seen).toContain('hello');
      expect(errors).toEqual([]);
    });
  });

  describe('agent and routing', () => {
    it('serves agent/self and status/leader to clients', async () => {
      const self = (await consul.agent.self()) as { Config: { NodeName: string; Datacenter: string } };
      expect(typeof self.Config.NodeName).toBe('string');
      expect(self.Config.Datacenter).toBe('dc1');
      expect(await consul.status.leader()).toMatch(/:\d+$/);
    });

    it('answers unknown endpoints with 404 and wrong methods with 405', async () => {
      expect((await http('/v1/no-such-endpoint')).status).toBe(404);
      expect((await http('/v1/session/create')).status).toBe(405);
      expect((await http(`/v1/session/renew/${randomUUID()}`)).status).toBe(405);
      expect((await http('/v1/kv/', { method: 'PUT', body: 'x' })).status).toBe(400);
    });
  });
});
