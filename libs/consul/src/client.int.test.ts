/**
 * The typed client against the Consul dev server (libs/consul-dev): KV with check-and-set and
 * session locks, sessions, blocking queries and watches, through real HTTP.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { createLogger } from '@cdp/log';
import { sleep } from '@cdp/testkit';
import { ConsulError, createConsulClient, type ConsulClient } from './client';
import type { KvEntry } from './kv-entry';
import type { ConsulWatch } from './watch';

let server: ConsulDevServer;
let consul: ConsulClient;
const sessions: string[] = [];
const prefix = `client-test-${randomUUID().slice(0, 8)}/`;
let n = 0;
const uniqueKey = (name: string) => `${prefix}${++n}-${name}`;

beforeAll(async () => {
  server = await startConsulDevServer({ minTtlMs: 200, ttlMultiplier: 1, logger: createLogger({ name: 'consul-dev', level: 'warn' }) });
  consul = createConsulClient(`${server.host}:${server.port}`);
});

afterAll(async () => {
  for (const id of sessions) await consul.session.destroy(id).catch(() => undefined);
  await consul.close();
  await server.close();
});

async function newSession(name: string, extra: { ttl?: string; lockDelay?: string } = {}): Promise<string> {
  const id = await consul.session.create({ name, ttl: extra.ttl ?? '10s', behavior: 'release', lockDelay: extra.lockDelay });
  sessions.push(id);
  return id;
}

/** The next `change` of a watch (rejects after `ms`). */
function nextChange<T>(watch: ConsulWatch<T>, ms = 5_000): Promise<{ value: T; index: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no change within ${ms} ms`)), ms);
    watch.once('change', (value, index) => {
      clearTimeout(timer);
      resolve({ value, index });
    });
  });
}

describe('kv', () => {
  it('writes, reads, lists and deletes, decoding values', async () => {
    const key = uniqueKey('a,b.c_d-e');
    expect(await consul.kv.get(key)).toBeUndefined();
    expect(await consul.kv.set(key, '{"x":"ü"}')).toBe(true);
    const entry = await consul.kv.get(key);
    expect(entry).toMatchObject({ Key: key, Value: '{"x":"ü"}', Flags: 0, LockIndex: 0 });
    expect(entry!.ModifyIndex).toBeGreaterThan(0);
    expect(entry!.Session).toBeUndefined();

    const empty = uniqueKey('empty');
    await consul.kv.set(empty, '', { flags: 42 });
    expect(await consul.kv.get(empty, { consistent: true })).toMatchObject({ Value: null, Flags: 42 });

    const folder = `${prefix}list-${n}/`;
    await consul.kv.set(`${folder}b`, '2');
    await consul.kv.set(`${folder}a`, Buffer.from('1'));
    expect((await consul.kv.list(folder)).map((e: KvEntry) => [e.Key, e.Value])).toEqual([
      [`${folder}a`, '1'],
      [`${folder}b`, '2'],
    ]);
    expect(await consul.kv.list(`${prefix}nothing-here/`)).toEqual([]);

    expect(await consul.kv.delete(key)).toBe(true);
    expect(await consul.kv.get(key)).toBeUndefined();
    expect(await consul.kv.delete(folder, { recurse: true })).toBe(true);
    expect(await consul.kv.list(folder)).toEqual([]);
  });

  it('check-and-set: 0 creates only, an index writes only while it is current', async () => {
    const key = uniqueKey('cas');
    expect(await consul.kv.set(key, 'one', { cas: 0 })).toBe(true);
    expect(await consul.kv.set(key, 'again', { cas: 0 })).toBe(false);
    const { ModifyIndex } = (await consul.kv.get(key))!;
    expect(await consul.kv.set(key, 'two', { cas: ModifyIndex })).toBe(true);
    expect(await consul.kv.set(key, 'stale', { cas: ModifyIndex })).toBe(false);
    expect((await consul.kv.get(key))!.Value).toBe('two');
    const latest = (await consul.kv.get(key))!.ModifyIndex;
    expect(await consul.kv.delete(key, { cas: ModifyIndex })).toBe(false);
    expect(await consul.kv.delete(key, { cas: latest })).toBe(true);
  });

  it('acquire and release: one holder, LockIndex counts acquisitions, release keeps the key', async () => {
    const key = uniqueKey('lock');
    const a = await newSession('client-test:a');
    const b = await newSession('client-test:b');
    expect(await consul.kv.set(key, '{"pod":"a"}', { acquire: a })).toBe(true);
    expect(await consul.kv.get(key)).toMatchObject({ Session: a, LockIndex: 1, Value: '{"pod":"a"}' });
    expect(await consul.kv.set(key, '{"pod":"b"}', { acquire: b })).toBe(false);
    expect(await consul.kv.set(key, 'x', { release: b })).toBe(false);
    expect(await consul.kv.set(key, '{"pod":"a"}', { release: a })).toBe(true);
    const released = (await consul.kv.get(key))!;
    expect(released.Session).toBeUndefined();
    expect(released.Value).toBe('{"pod":"a"}');
    expect(await consul.kv.set(key, '{"pod":"b"}', { acquire: b })).toBe(true);
    expect(await consul.kv.get(key)).toMatchObject({ Session: b, LockIndex: 2 });
  });

  it('turns a refused request into a ConsulError with the status', async () => {
    const error = await consul.kv.set(uniqueKey('bad'), 'x', { cas: 0, acquire: 'someone' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConsulError);
    expect((error as ConsulError).status).toBe(400);
    expect((error as ConsulError).message).toMatch(/^consul PUT \/v1\/kv\/.*: HTTP 400: Conflicting flags/);
  });
});

describe('sessions', () => {
  it('create, info, list, renew and destroy', async () => {
    const id = await newSession('client-test:life', { ttl: '2s', lockDelay: '3s' });
    const info = await consul.session.info(id);
    expect(info).toMatchObject({ ID: id, Name: 'client-test:life', TTL: '2s', Behavior: 'release', LockDelay: 3_000_000_000 });
    expect((await consul.session.list()).map((s) => s.ID)).toContain(id);
    expect(await consul.session.renew(id)).toBe(true);

    await consul.session.destroy(id);
    expect(await consul.session.info(id)).toBeUndefined();
    expect(await consul.session.renew(id)).toBe(false);
    expect((await consul.session.list()).map((s) => s.ID)).not.toContain(id);
    await consul.session.destroy(id); // destroying an unknown session is not an error
  });

  it('a session invalidated while holding a key leaves it in lock-delay', async () => {
    const key = uniqueKey('delay');
    const crashed = await newSession('client-test:crashed', { lockDelay: '1s' });
    expect(await consul.kv.set(key, 'v', { acquire: crashed })).toBe(true);
    await consul.session.destroy(crashed);
    const next = await newSession('client-test:next');
    expect(await consul.kv.set(key, 'v', { acquire: next })).toBe(false);
    await sleep(1_100);
    expect(await consul.kv.set(key, 'v', { acquire: next })).toBe(true);
  });

  it('expires a session that is not renewed within its TTL', async () => {
    const id = await newSession('client-test:ttl', { ttl: '300ms' });
    await sleep(200);
    expect(await consul.session.renew(id)).toBe(true);
    await sleep(200);
    expect(await consul.session.info(id)).toBeDefined();
    await sleep(300);
    expect(await consul.session.info(id)).toBeUndefined();
  });
});

describe('blocking queries', () => {
  it('answer at once without an index, then wait for a change past the index', async () => {
    const key = uniqueKey('block');
    await consul.kv.set(key, 'one');
    const first = await consul.kv.entry(key)({});
    expect(first.value?.Value).toBe('one');
    expect(first.index).toBeGreaterThan(0);

    const started = Date.now();
    const blocked = consul.kv.entry(key)({ index: first.index, wait: '10s' });
    await sleep(300);
    await consul.kv.set(key, 'two');
    const second = await blocked;
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(second.value?.Value).toBe('two');
    expect(second.index).toBeGreaterThan(first.index);
  });

  it('answer with the same index when the wait passes without a change', async () => {
    const key = uniqueKey('quiet');
    await consul.kv.set(key, 'v');
    const { index } = await consul.kv.prefix(key)({});
    const started = Date.now();
    const again = await consul.kv.prefix(key)({ index, wait: '400ms' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(again.index).toBe(index);
    expect(again.value.map((e) => e.Value)).toEqual(['v']);
  });

  it('a missing key answers undefined with an index, and blocks until it appears', async () => {
    const key = uniqueKey('later');
    const missing = await consul.kv.entry(key)({});
    expect(missing.value).toBeUndefined();
    expect(missing.index).toBeGreaterThan(0);
    const blocked = consul.kv.entry(key)({ index: missing.index, wait: '10s' });
    await consul.kv.set(key, 'here');
    expect((await blocked).value?.Value).toBe('here');
  });

  it('session queries block too', async () => {
    const { index } = await consul.session.all()({});
    const blocked = consul.session.all()({ index, wait: '10s' });
    const id = await newSession('client-test:blocking');
    const answer = await blocked;
    expect(answer.index).toBeGreaterThan(index);
    expect(answer.value.map((s) => s.ID)).toContain(id);
    expect((await consul.session.one(id)({})).value?.ID).toBe(id);
  });

  it('can be aborted', async () => {
    const key = uniqueKey('abort');
    const { index } = await consul.kv.entry(key)({});
    const aborter = new AbortController();
    const blocked = consul.kv.entry(key)({ index, wait: '30s', signal: aborter.signal });
    setTimeout(() => aborter.abort(), 100);
    await expect(blocked).rejects.toBeInstanceOf(ConsulError);
  });
});

describe('watch', () => {
  it('emits the current value, then each change, including a delete; end() stops it', async () => {
    const folder = `${prefix}watch-${++n}/`;
    await consul.kv.set(`${folder}a`, '1');
    const watch = consul.watch(consul.kv.prefix(folder), { wait: '10s' });
    try {
      const first = await nextChange(watch);
      expect(first.value.map((e) => e.Value)).toEqual(['1']);

      const second = nextChange(watch);
      await consul.kv.set(`${folder}b`, '2');
      expect((await second).value.map((e) => e.Value)).toEqual(['1', '2']);
      expect((await second).index).toBeGreaterThan(first.index);

      const third = nextChange(watch);
      await consul.kv.delete(folder, { recurse: true });
      expect((await third).value).toEqual([]);
    } finally {
      watch.end();
    }
    expect(watch.isRunning).toBe(false);
    const after = jest.fn();
    watch.on('change', after);
    await consul.kv.set(`${folder}c`, '3');
    await sleep(200);
    expect(after).not.toHaveBeenCalled();
  });

  it('reports errors and keeps trying while Consul is unreachable', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = createConsulClient(`127.0.0.1:${port}`);
    const watch = unreachable.watch(unreachable.kv.entry('x'), { backoffFactorMs: 10, backoffMaxMs: 40 });
    const errors: unknown[] = [];
    watch.on('error', (error) => errors.push(error));
    await sleep(500);
    watch.end();
    await unreachable.close();
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(errors[0]).toBeInstanceOf(ConsulError);
    expect(String(errors[0])).toMatch(/ECONNREFUSED|connect/);
  });
});

describe('timeouts', () => {
  it('fails a request that gets no answer within its timeout', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const client = createConsulClient(`127.0.0.1:${port}`, { requestTimeoutMs: 200 });
    try {
      const started = Date.now();
      await expect(client.kv.get('x')).rejects.toThrow(/consul GET \/v1\/kv\/x: no answer within 200 ms/);
      expect(Date.now() - started).toBeLessThan(2_000);
      await expect(client.session.renew('s', { timeoutMs: 100 })).rejects.toThrow(/no answer within 100 ms/);
    } finally {
      await client.close();
      silent.close();
    }
  });
});

describe('ACL token', () => {
  let secured: ConsulDevServer;
  beforeAll(async () => {
    secured = await startConsulDevServer({
      aclToken: 'acl-token-for-the-test',
      logger: createLogger({ name: 'consul-dev', level: 'warn' }),
    });
  });
  afterAll(() => secured.close());

  it('sends the token with every request; without it or with another one Consul answers 403', async () => {
    const withToken = createConsulClient(secured.url, { token: 'acl-token-for-the-test' });
    const without = createConsulClient(secured.url);
    const other = createConsulClient(secured.url, { token: 'some-other-token' });
    try {
      const session = await withToken.session.create({ name: 'acl-test', ttl: '10s', behavior: 'release' });
      expect(await withToken.kv.set('cdp/acl-test/lock', '{}', { acquire: session })).toBe(true);
      expect((await withToken.kv.get('cdp/acl-test/lock'))?.Session).toBe(session);
      await withToken.session.destroy(session);
      await expect(without.kv.get('cdp/acl-test/lock')).rejects.toMatchObject({
        status: 403,
        message: expect.stringMatching(/Permission denied/),
      });
      await expect(other.session.create({ name: 'x', ttl: '10s', behavior: 'release' })).rejects.toMatchObject({
        status: 403,
        message: expect.stringMatching(/ACL not found/),
      });
    } finally {
      await Promise.all([withToken.close(), without.close(), other.close()]);
    }
  });
});
