import { RateLimiter } from './rate-limit';
import { parseRuntimeConfig } from './runtime-config';
import { hash64, HashSet64, SuppressionSet } from './suppression';

describe('RateLimiter', () => {
  it('allows a burst, then refuses with Retry-After until tokens refill', () => {
    let now = 0;
    const rl = new RateLimiter(() => now);
    const limit = { eventsPerSecond: 10, burst: 20 };
    expect(rl.take('s', limit, 15).ok).toBe(true);
    expect(rl.take('s', limit, 5).ok).toBe(true);
    const refused = rl.take('s', limit, 10);
    expect(refused).toEqual({ ok: false, retryAfterSeconds: 1 });
    now += 1000;
    expect(rl.take('s', limit, 10).ok).toBe(true);
    expect(rl.take('other', limit, 20).ok).toBe(true);
    expect(rl.take('s', undefined, 1_000_000).ok).toBe(true);
    // A request bigger than the burst passes only on a full bucket.
    now += 10_000;
    expect(rl.take('s', limit, 50).ok).toBe(true);
    expect(rl.take('s', limit, 1).ok).toBe(false);
  });
});

describe('HashSet64', () => {
  it('behaves like a Set under random adds and deletes (with tombstones and growth)', () => {
    let seed = 42;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const set = new HashSet64(16);
    const ref = new Map<string, [number, number]>();
    for (let i = 0; i < 20_000; i++) {
      const k = `u${rand() % 5_000}`;
      const [hi, lo] = hash64(k);
      if (rand() % 3 === 0) {
        expect(set.delete(hi, lo)).toBe(ref.delete(k));
      } else {
        expect(set.add(hi, lo)).toBe(!ref.has(k));
        ref.set(k, [hi, lo]);
      }
    }
    expect(set.size).toBe(ref.size);
    for (let i = 0; i < 5_000; i++) {
      const [hi, lo] = hash64(`u${i}`);
      expect(set.has(hi, lo)).toBe(ref.has(`u${i}`));
    }
    // The reserved slot values still work as members.
    expect(set.add(0, 0)).toBe(true);
    expect(set.add(0, 1)).toBe(true);
    expect(set.has(0, 0) && set.has(0, 1)).toBe(true);
  });

  it('applies regulation records: suppress, unsuppress, tombstone, invalid', () => {
    const s = new SuppressionSet();
    const reg = (type: string, userId = 'u1') =>
      Buffer.from(JSON.stringify({ regulationId: 'r', type, userId, spaceId: 'main', requestedAt: '2026-01-01T00:00:00Z' }));
    expect(s.applyRecord('main:u1', reg('SUPPRESS_ONLY'))).toBe('applied');
    expect(s.has('main', 'u1')).toBe(true);
    expect(s.has('other', 'u1')).toBe(false);
    s.applyRecord('main:u1', reg('UNSUPPRESS'));
    expect(s.has('main', 'u1')).toBe(false);
    s.applyRecord('main:u1', reg('SUPPRESS_WITH_DELETE'));
    expect(s.has('main', 'u1')).toBe(true);
    s.applyRecord('main:u1', null);
    expect(s.has('main', 'u1')).toBe(false);
    expect(s.applyRecord('main:u1', Buffer.from('{'))).toBe('invalid');
    expect(s.applyRecord(null, reg('SUPPRESS_ONLY'))).toBe('invalid');
    expect(s.size).toBe(0);
  });
});

describe('runtime config', () => {
  it('accepts auto/primary/secondary and refuses anything else', () => {
    expect(parseRuntimeConfig('{"cluster":"secondary"}').cluster).toBe('secondary');
    expect(parseRuntimeConfig('{}').cluster).toBe('auto');
    expect(() => parseRuntimeConfig('{"cluster":"both"}')).toThrow();
    expect(() => parseRuntimeConfig('nope')).toThrow();
  });
});

describe('suppression set memory', () => {
  it('holds 200,000 users in under 40 bytes each (hashes, not strings)', () => {
    const set = new SuppressionSet();
    const heapBefore = process.memoryUsage();
    for (let i = 0; i < 200_000; i++) set.suppress('main', `user-${i}@example.com`);
    expect(set.size).toBe(200_000);
    expect(set.has('main', 'user-199999@example.com')).toBe(true);
    expect(set.has('main', 'user-200000@example.com')).toBe(false);
    expect(set.bytes / set.size).toBeLessThan(40);
    const after = process.memoryUsage();
    // Typed arrays live outside the JS heap; the heap itself barely moves.
    expect(after.heapUsed - heapBefore.heapUsed).toBeLessThan(50 * 1024 * 1024);
    console.log(
      `suppression set: ${set.size} users, ${(set.bytes / 1024 / 1024).toFixed(1)} MiB tables, ${(set.bytes / set.size).toFixed(1)} B/user`,
    );
  });
});
