/**
 * ConsulSession / ConsulLock against the in-process Consul dev server (short TTLs, expiry
 * at exactly TTL, Consul's default 15 s lock-delay), driven through @cdp/consul's client.
 */
import { randomUUID } from 'node:crypto';
import { createConsulClient, type ConsulClient } from '@cdp/consul';
import { createLogger } from '@cdp/log';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { ConsulLock, type LockLostReason } from './lock';
import { ConsulSession } from './session';

const logger = createLogger({ name: 'consul-lock-test', level: 'error' });
const TTL = '1s';

let server: ConsulDevServer;
let consul: ConsulClient;
const sessions: ConsulSession[] = [];
let n = 0;
const uniqueKey = (name: string) => `cdp-lock-test/${randomUUID().slice(0, 8)}/${++n}-${name}/lock`;

beforeAll(async () => {
  server = await startConsulDevServer({
    port: 0,
    minTtlMs: 200,
    ttlMultiplier: 1,
    logger: createLogger({ name: 'consul-dev', level: 'warn' }),
  });
  consul = createConsulClient(`${server.host}:${server.port}`);
});

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.destroy().catch(() => undefined)));
});

afterAll(async () => {
  await consul.close();
  await server.close();
});

async function newSession(name: string, extra: { ttl?: string; lockDelay?: string } = {}) {
  const session = await ConsulSession.create(consul, { name, ttl: TTL, logger, ...extra });
  sessions.push(session);
  return session;
}

const http = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);

function nextLoss(lock: ConsulLock, timeoutMs = 15_000): Promise<{ reason: LockLostReason; detail: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lock ${lock.key} not lost within ${timeoutMs} ms`)), timeoutMs);
    lock.once('lost', (reason, detail) => {
      clearTimeout(timer);
      resolve({ reason, detail });
    });
  });
}

async function holderOf(key: string): Promise<string | undefined> {
  const res = await http(`/v1/kv/${key}`);
  if (res.status === 404) return undefined;
  const [entry] = (await res.json()) as Array<{ Session?: string }>;
  return entry.Session;
}

describe('ConsulSession + ConsulLock', () => {
  it('acquires, refuses a contender, releases, and records LockIndex as the fencing token', async () => {
    const key = uniqueKey('contend');
    const a = await newSession('director:a');
    const b = await newSession('director:b');

    const lockA = await a.acquire(key, 'owner-a');
    expect(lockA).not.toBeNull();
    expect(lockA!.isHeld).toBe(true);
    expect(lockA!.lockIndex).toBe(1);
    expect(lockA!.sessionId).toBe(a.id);
    expect(await holderOf(key)).toBe(a.id);

    expect(await b.acquire(key, 'owner-b')).toBeNull();

    const lost = jest.fn();
    lockA!.on('lost', lost);
    expect(await lockA!.release()).toBe(true);
    expect(lockA!.isHeld).toBe(false);
    expect(await lockA!.release()).toBe(false);
    expect(await holderOf(key)).toBeUndefined();
    // Release resends the value, which Consul would otherwise overwrite with an empty body.
    expect(await consul.kv.get(key)).toMatchObject({ Value: 'owner-a' });

    const lockB = await b.acquire(key, 'owner-b');
    expect(lockB?.lockIndex).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lost).not.toHaveBeenCalled();
  });

  it('loses the lock, and says so, when its session is destroyed behind its back', async () => {
    const key = uniqueKey('destroyed');
    const session = await newSession('director:victim');
    const lock = (await session.acquire(key, 'v'))!;
    const sessionLost = new Promise<string>((resolve) => session.once('lost', resolve));
    const loss = nextLoss(lock);

    const res = await http(`/v1/session/destroy/${session.id}`, { method: 'PUT' });
    expect(res.status).toBe(200);

    const { reason } = await loss;
    expect(reason).toBe('session-lost');
    expect(lock.isHeld).toBe(false);
    expect(lock.lostReason).toBe('session-lost');
    expect(await sessionLost).toMatch(/no longer exists|not found/);
    expect(session.isLost).toBe(true);
    await expect(session.acquire(uniqueKey('after'), 'v')).rejects.toThrow(/is lost/);
  });

  it('loses the lock when its key is deleted, while the session lives on', async () => {
    const key = uniqueKey('deleted');
    const session = await newSession('director:del');
    const lock = (await session.acquire(key, 'v'))!;
    const loss = nextLoss(lock);

    await http(`/v1/kv/${key}`, { method: 'DELETE' });

    const { reason, detail } = await loss;
    expect(reason).toBe('key-deleted');
    expect(detail).toContain(key);
    expect(lock.isHeld).toBe(false);
    expect(session.state).toBe('active');
    const again = await session.acquire(key, 'v');
    expect(again?.isHeld).toBe(true);
  });

  it('reports session-changed when the key is released under it', async () => {
    const key = uniqueKey('changed');
    const session = await newSession('director:chg');
    const lock = (await session.acquire(key, 'v'))!;
    const loss = nextLoss(lock);

    const res = await http(`/v1/kv/${key}?release=${session.id}`, { method: 'PUT', body: 'v' });
    expect(await res.text()).toBe('true');

    expect((await loss).reason).toBe('session-changed');
    expect(session.state).toBe('active');
  });

  it('keeps the session and its lock alive past the TTL by renewing', async () => {
    const key = uniqueKey('renewed');
    const session = await newSession('director:renew');
    const lock = (await session.acquire(key, 'v'))!;
    const lost = jest.fn();
    lock.on('lost', lost);
    session.on('lost', lost);

    await new Promise((resolve) => setTimeout(resolve, 3_000)); // 3 x TTL, expiry at 1 x TTL

    expect(lost).not.toHaveBeenCalled();
    expect(lock.isHeld).toBe(true);
    expect(await holderOf(key)).toBe(session.id);
    expect((await consul.session.info(session.id))?.ID).toBe(session.id);
  });

  it('loses the lock when renewals stop and Consul expires the session', async () => {
    const key = uniqueKey('expired');
    const session = await newSession('director:frozen');
    const lock = (await session.acquire(key, 'v'))!;
    const loss = nextLoss(lock, 20_000);

    session.pauseRenewals();

    expect((await loss).reason).toBe('session-lost');
    expect(lock.isHeld).toBe(false);
    expect(session.isLost).toBe(true);
    expect(session.lostReason).toMatch(/no longer exists/);
    expect(await holderOf(key)).toBeUndefined();
  });

  it('destroy() releases its locks first, so the next holder waits for no lock-delay', async () => {
    const key = uniqueKey('handover');
    const leaving = await newSession('director:leaving'); // server default lock-delay: 15 s
    const lock = (await leaving.acquire(key, 'v'))!;
    const lost = jest.fn();
    lock.on('lost', lost);

    await leaving.destroy();

    expect(lock.isHeld).toBe(false);
    expect(lost).not.toHaveBeenCalled();
    expect(await consul.session.info(leaving.id)).toBeUndefined();
    const next = await newSession('director:next');
    const taken = await next.acquire(key, 'v');
    expect(taken?.lockIndex).toBe(2);
  });

  it('a session invalidated without a release leaves its keys in lock-delay', async () => {
    const key = uniqueKey('delay');
    const crashed = await newSession('director:crashed', { lockDelay: '2s' });
    await crashed.acquire(key, 'v');
    await http(`/v1/session/destroy/${crashed.id}`, { method: 'PUT' });

    const next = await newSession('director:next');
    expect(await next.acquire(key, 'v')).toBeNull();
    let lock: ConsulLock | null = null;
    const deadline = Date.now() + 20_000;
    while (!lock && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      lock = await next.acquire(key, 'v');
    }
    expect(lock?.isHeld).toBe(true);
  });
});
