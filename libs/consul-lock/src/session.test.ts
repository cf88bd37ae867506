import { ConsulWatch } from '@cdp/consul';
import { createLogger } from '@cdp/log';
import { sleep } from '@cdp/testkit';
import { ConsulSession, type SessionClient } from './session';

const logger = createLogger({ name: 'consul-lock-test', level: 'silent' });
const notUsed = (): never => {
  throw new Error('not used by the renewal loop');
};

/** Just enough of the Consul client for the renewal loop; renew behaviour is swappable. */
class FakeConsul implements SessionClient {
  renewCalls = 0;
  destroyed: string[] = [];
  /** Resolves false when Consul no longer has the session. */
  renew: () => Promise<boolean> = async () => true;
  session: SessionClient['session'] = {
    create: async () => 'sid',
    renew: () => {
      this.renewCalls++;
      return this.renew();
    },
    destroy: async (id: string) => {
      this.destroyed.push(id);
    },
    info: notUsed,
    list: notUsed,
    one: notUsed,
    all: notUsed,
  };
  kv: SessionClient['kv'] = { get: notUsed, list: notUsed, entry: notUsed, prefix: notUsed, set: notUsed, delete: notUsed };
  watch<T>(): ConsulWatch<T> {
    return notUsed();
  }
}

const notFound = async () => false;
const unreachable = () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

async function start(fake: FakeConsul, ttl = '300ms') {
  const session = await ConsulSession.create(fake, { name: 'unit', ttl, logger });
  const lost: string[] = [];
  session.on('lost', (reason) => lost.push(reason));
  return { session, lost };
}

describe('ConsulSession renewals', () => {
  it('renews every TTL/2 and stays active', async () => {
    const fake = new FakeConsul();
    const { session, lost } = await start(fake);
    await sleep(700);
    expect(fake.renewCalls).toBeGreaterThanOrEqual(3);
    expect(session.state).toBe('active');
    expect(lost).toEqual([]);
    await session.destroy();
  });

  it('is lost on a 404 renewal and stops renewing', async () => {
    const fake = new FakeConsul();
    fake.renew = notFound;
    const { session, lost } = await start(fake);
    await sleep(250);
    expect(session.isLost).toBe(true);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/not found on renew/);
    const calls = fake.renewCalls;
    await sleep(400);
    expect(fake.renewCalls).toBe(calls);
    expect(fake.destroyed).toEqual([]); // Consul already dropped it
    await expect(session.acquire('k')).rejects.toThrow(/is lost/);
  });

  it('survives a transient error when a retry succeeds within the TTL', async () => {
    const fake = new FakeConsul();
    let failures = 1;
    fake.renew = async () => {
      if (failures-- > 0) throw unreachable();
      return true;
    };
    const { session, lost } = await start(fake);
    await sleep(900);
    expect(lost).toEqual([]);
    expect(session.state).toBe('active');
    await session.destroy();
  });

  it('is lost after a whole TTL of failing renewals, and destroys the session best-effort', async () => {
    const fake = new FakeConsul();
    fake.renew = async () => {
      throw unreachable();
    };
    const { session, lost } = await start(fake);
    await sleep(100);
    expect(session.isLost).toBe(false);
    await sleep(500);
    expect(session.isLost).toBe(true);
    expect(lost[0]).toMatch(/no successful renewal for a whole TTL \(300ms\)/);
    expect(fake.destroyed).toEqual(['sid']);
  });

  it('logs one warn line naming the session and the reason', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const captured = createLogger({
      name: 'consul-lock-test',
      level: 'warn',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const fake = new FakeConsul();
    fake.renew = notFound;
    const session = await ConsulSession.create(fake, { name: 'director:p1', ttl: '300ms', logger: captured });
    await sleep(250);
    expect(session.isLost).toBe(true);
    const lost = lines.filter((l) => l.msg === 'consul session lost');
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ level: 'warn', session: 'sid', sessionName: 'director:p1' });
    expect(String(lost[0].reason)).toMatch(/not found on renew/);
  });

  it('is lost after a TTL even when a renewal request hangs', async () => {
    const fake = new FakeConsul();
    fake.renew = () => new Promise(() => undefined);
    const { session, lost } = await start(fake);
    await sleep(600);
    expect(session.isLost).toBe(true);
    expect(lost).toHaveLength(1);
  });

  it('destroy() stops renewing, destroys the session and emits nothing', async () => {
    const fake = new FakeConsul();
    const { session, lost } = await start(fake);
    await session.destroy();
    await session.destroy();
    const calls = fake.renewCalls;
    await sleep(400);
    expect(fake.renewCalls).toBe(calls);
    expect(fake.destroyed).toEqual(['sid']);
    expect(session.state).toBe('destroyed');
    expect(lost).toEqual([]);
  });

  it('pauseRenewals() stops renewals; resuming onto an expired session makes it lost', async () => {
    const fake = new FakeConsul();
    const { session, lost } = await start(fake);
    session.pauseRenewals();
    const calls = fake.renewCalls;
    await sleep(600);
    expect(fake.renewCalls).toBe(calls);
    expect(session.isLost).toBe(false);
    fake.renew = notFound;
    session.resumeRenewals();
    await sleep(50);
    expect(lost).toHaveLength(1);
  });

  it('refuses sessions without a usable TTL', async () => {
    const fake = new FakeConsul();
    await expect(ConsulSession.create(fake, { name: 'x', ttl: '0', logger })).rejects.toThrow(/TTL must be > 0/);
    await expect(ConsulSession.create(fake, { name: 'x', ttl: 'ten', logger })).rejects.toThrow(/invalid duration/);
  });
});
