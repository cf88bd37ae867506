/** LeaderElection against the Consul dev server (expiry at exactly TTL) through @cdp/consul's client. */
import { randomUUID } from 'node:crypto';
import { createLogger } from '@cdp/log';
import { createConsulClient, type ConsulClient } from '@cdp/consul';
import { startConsulDevServer, type ConsulDevServer } from '@cdp/consul-dev';
import { waitFor } from '@cdp/testkit';
import { LeaderElection } from './leader';

const logger = createLogger({ name: 'leader-test', level: 'error' });

let server: ConsulDevServer;
let consul: ConsulClient;
const elections: LeaderElection[] = [];

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
  await Promise.all(elections.splice(0).map((e) => e.stop()));
});

afterAll(async () => {
  await consul.close();
  await server.close();
});

function election(key: string, name: string): LeaderElection {
  const e = new LeaderElection({
    consul,
    key,
    name,
    value: JSON.stringify({ pod: name }),
    ttlMs: 600,
    lockDelayMs: 400,
    retryMs: 100,
    logger,
  });
  elections.push(e);
  return e;
}

describe('LeaderElection', () => {
  it('one leader at a time; a stopped leader hands over at once', async () => {
    const key = `leader-test/${randomUUID().slice(0, 8)}`;
    const a = election(key, 'm:a');
    const b = election(key, 'm:b');
    await a.tryLead();
    await b.tryLead();
    expect(a.isLeader).toBe(true);
    expect(b.isLeader).toBe(false);
    expect(await a.confirm()).toBe(true);
    expect(await b.confirm()).toBe(false);

    b.start();
    const startedAt = Date.now();
    await a.stop();
    await waitFor(() => b.isLeader, 5_000);
    // Released, not expired: no lock delay.
    expect(Date.now() - startedAt).toBeLessThan(400);
    expect(await b.confirm()).toBe(true);
  });

  it('a frozen leader is deposed: confirm() is false on its first action, the standby leads after TTL + lock delay', async () => {
    const key = `leader-test/${randomUUID().slice(0, 8)}`;
    const a = election(key, 'm:a');
    const b = election(key, 'm:b');
    await a.tryLead();
    expect(a.isLeader).toBe(true);
    const deposed = new Promise<string>((resolve) => a.once('deposed', resolve));
    const frozenAt = Date.now();
    a.freeze();
    b.start();
    await waitFor(() => b.isLeader, 10_000);
    // Not before the session expired (TTL) and the lock delay ended.
    expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(600 + 400 - 50);
    // Nothing in the frozen process noticed; its first check before acting says no.
    expect(a.isLeader).toBe(true);
    expect(await a.confirm()).toBe(false);
    expect(a.isLeader).toBe(false);
    expect(await deposed).toMatch(/./);
    expect(await b.confirm()).toBe(true);
  });
});
