import { createLogger } from '@cdp/log';
import { ConsulHttpError } from './errors';
import { ConsulStore } from './store';

const logger = createLogger({ name: 'consul-dev-test', level: 'silent' });

function makeStore(overrides: Partial<ConstructorParameters<typeof ConsulStore>[0]> = {}) {
  let now = 1_000_000;
  const store = new ConsulStore({
    nodeName: 'node-a',
    minTtlMs: 10_000,
    ttlMultiplier: 2,
    defaultLockDelayMs: 15_000,
    logger,
    now: () => now,
    ...overrides,
  });
  return { store, advance: (ms: number) => (now += ms) };
}

const val = (s: string) => Buffer.from(s);

function rpcFailure(fn: () => unknown): ConsulHttpError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConsulHttpError) return error;
    throw error;
  }
  throw new Error('expected a ConsulHttpError');
}

describe('ConsulStore sessions', () => {
  it('applies Consul defaults', () => {
    const { store } = makeStore();
    const s = store.createSession({});
    expect(s).toMatchObject({
      node: 'node-a',
      behavior: 'release',
      ttl: '',
      lockDelayNs: 15_000_000_000n,
      nodeChecks: ['serfHealth'],
      serviceChecks: null,
    });
    expect(s.createIndex).toBeGreaterThan(1);
    store.close();
  });

  it('validates behavior, TTL range, node and checks with Consul texts', () => {
    const { store } = makeStore();
    expect(rpcFailure(() => store.createSession({ behavior: 'keep' })).message).toBe("Invalid Behavior setting 'keep'");
    const tooShort = rpcFailure(() => store.createSession({ ttl: '5s' }));
    expect(tooShort.status).toBe(500);
    expect(tooShort.message).toBe("Invalid Session TTL '5000000000', must be between [10s=24h0m0s]");
    expect(rpcFailure(() => store.createSession({ ttl: '25h' })).message).toMatch(/^Invalid Session TTL/);
    expect(rpcFailure(() => store.createSession({ ttl: 'soon' })).message).toBe(
      'Session TTL \'soon\' invalid: time: invalid duration "soon"',
    );
    expect(rpcFailure(() => store.createSession({ node: 'other' })).message).toBe('Missing node registration');
    expect(rpcFailure(() => store.createSession({ checks: ['web'] })).message).toBe("Missing check 'web' registration");
    expect(store.createSession({ checks: [] }).nodeChecks).toBeNull();
    expect(store.createSession({ ttl: '0s' }).ttl).toBe('0s');
    store.close();
  });

  it('renew of an unknown session is undefined (HTTP 404)', () => {
    const { store } = makeStore();
    expect(store.renewSession('00000000-0000-4000-8000-000000000000')).toBeUndefined();
    expect(rpcFailure(() => store.renewSession('nope')).message).toBe('UUID must be 36 characters');
  });
});

describe('ConsulStore KV locking', () => {
  it('acquire/release keep LockIndex semantics', () => {
    const { store } = makeStore();
    const a = store.createSession({}).id;
    const b = store.createSession({}).id;
    expect(store.putKey('k', val('a1'), 0n, { kind: 'lock', session: a })).toBe(true);
    expect(store.getKey('k').entry).toMatchObject({ lockIndex: 1, session: a });
    expect(store.putKey('k', val('a2'), 0n, { kind: 'lock', session: a })).toBe(true);
    expect(store.getKey('k').entry).toMatchObject({ lockIndex: 1, session: a, value: val('a2') });
    expect(store.putKey('k', val('b'), 0n, { kind: 'lock', session: b })).toBe(false);
    expect(store.putKey('k', null, 0n, { kind: 'unlock', session: b })).toBe(false);
    expect(store.putKey('k', val('a2'), 0n, { kind: 'unlock', session: a })).toBe(true);
    expect(store.getKey('k').entry).toMatchObject({ lockIndex: 1, session: '' });
    expect(store.putKey('k', val('b'), 0n, { kind: 'lock', session: b })).toBe(true);
    expect(store.getKey('k').entry).toMatchObject({ lockIndex: 2, session: b });
    store.close();
  });

  it('a plain PUT keeps the session but resets LockIndex, like Consul', () => {
    const { store } = makeStore();
    const a = store.createSession({}).id;
    store.putKey('k', val('x'), 0n, { kind: 'lock', session: a });
    store.putKey('k', val('y'), 0n, { kind: 'set' });
    expect(store.getKey('k').entry).toMatchObject({ lockIndex: 0, session: a, value: val('y') });
    store.close();
  });

  it('rejects unknown sessions and enforces lock-delay after invalidation', () => {
    const { store, advance } = makeStore();
    expect(rpcFailure(() => store.putKey('k', null, 0n, { kind: 'lock', session: '00000000-0000-4000-8000-000000000000' })).message).toBe(
      'invalid session "00000000-0000-4000-8000-000000000000"',
    );
    const a = store.createSession({ lockDelayNs: 2_000_000_000n }).id;
    const b = store.createSession({}).id;
    store.putKey('k', val('v'), 0n, { kind: 'lock', session: a });
    const before = store.getKey('k').entry!;
    store.destroySession(a);
    const after = store.getKey('k').entry!;
    expect(after).toMatchObject({ session: '', lockIndex: 1, value: val('v') });
    expect(after.modifyIndex).toBeGreaterThan(before.modifyIndex);
    expect(store.putKey('k', val('b'), 0n, { kind: 'lock', session: b })).toBe(false);
    advance(1_999);
    expect(store.putKey('k', val('b'), 0n, { kind: 'lock', session: b })).toBe(false);
    advance(2);
    expect(store.putKey('k', val('b'), 0n, { kind: 'lock', session: b })).toBe(true);
    expect(store.getKey('k').entry!.lockIndex).toBe(2);
    store.close();
  });

  it('behavior delete removes held keys on invalidation', () => {
    const { store } = makeStore();
    const a = store.createSession({ behavior: 'delete', lockDelayNs: 0n }).id;
    store.putKey('k', val('v'), 0n, { kind: 'lock', session: a });
    store.destroySession(a);
    expect(store.getKey('k').entry).toBeUndefined();
    store.close();
  });

  it('expires TTL sessions at TTL x multiplier', async () => {
    const { store } = makeStore({ minTtlMs: 10, ttlMultiplier: 1 });
    const a = store.createSession({ ttl: '50ms', lockDelayNs: 0n }).id;
    store.putKey('k', val('v'), 0n, { kind: 'lock', session: a });
    await new Promise((r) => setTimeout(r, 30));
    expect(store.renewSession(a)).toBeDefined();
    await new Promise((r) => setTimeout(r, 30));
    expect(store.getKey('k').entry!.session).toBe(a);
    await new Promise((r) => setTimeout(r, 120));
    expect(store.getSession(a).session).toBeUndefined();
    expect(store.getKey('k').entry!.session).toBe('');
    store.close();
  });
});

describe('ConsulStore KV indexes', () => {
  it('cas: 0 creates only; otherwise must match ModifyIndex', () => {
    const { store } = makeStore();
    expect(store.putKey('c', val('1'), 0n, { kind: 'cas', index: 0 })).toBe(true);
    expect(store.putKey('c', val('2'), 0n, { kind: 'cas', index: 0 })).toBe(false);
    const m = store.getKey('c').entry!.modifyIndex;
    expect(store.putKey('c', val('2'), 0n, { kind: 'cas', index: m + 100 })).toBe(false);
    expect(store.putKey('c', val('2'), 0n, { kind: 'cas', index: m })).toBe(true);
    expect(store.deleteKey('c', { cas: m })).toBe(false);
    expect(store.deleteKey('c', { cas: store.getKey('c').entry!.modifyIndex })).toBe(true);
    expect(store.deleteKey('c', { cas: 5 })).toBe(true);
  });

  it('an unchanged write keeps ModifyIndex and the table index', () => {
    const { store } = makeStore();
    store.putKey('same', val('v'), 3n, { kind: 'set' });
    const { index, entry } = store.getKey('same');
    store.putKey('same', val('v'), 3n, { kind: 'set' });
    expect(store.getKey('same')).toEqual({ index, entry });
  });

  it('a prefix index covers its tombstones and ignores other prefixes', () => {
    const { store } = makeStore();
    store.putKey('p/a', val('1'), 0n, { kind: 'set' });
    store.putKey('p/b', val('2'), 0n, { kind: 'set' });
    const afterWrites = store.listPrefix('p/').index;
    store.putKey('q/x', val('3'), 0n, { kind: 'set' });
    expect(store.listPrefix('p/').index).toBe(afterWrites);
    store.deleteKey('p/b', {});
    const afterDelete = store.listPrefix('p/').index;
    expect(afterDelete).toBeGreaterThan(afterWrites);
    expect(store.listPrefix('p/').entries.map((e) => e.key)).toEqual(['p/a']);
    expect(store.listPrefix('nothing/').index).toBe(store.index('kvs'));
  });

  it('lists keys with a separator like Consul folders', () => {
    const { store } = makeStore();
    for (const k of ['f/a', 'f/b/c', 'f/b/d', 'f/e/', 'g']) store.putKey(k, null, 0n, { kind: 'set' });
    expect(store.listKeys('f/', '').keys).toEqual(['f/a', 'f/b/c', 'f/b/d', 'f/e/']);
    expect(store.listKeys('f/', '/').keys).toEqual(['f/a', 'f/b/', 'f/e/']);
  });

  it('never reports index 0 and wakes waiters on change', async () => {
    const { store } = makeStore();
    expect(store.index('kvs')).toBe(1);
    const woke = store.waitForChange('kvs', 5_000);
    store.putKey('w', val('1'), 0n, { kind: 'set' });
    await expect(woke).resolves.toBe(true);
    await expect(store.waitForChange('kvs', 10)).resolves.toBe(false);
    const pending = store.waitForChange('sessions', 5_000);
    store.close();
    await expect(pending).resolves.toBe(false);
  });
});
