import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PartitionStore } from './store';

const DAY = 86_400_000;

describe('PartitionStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedup-store-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('records keys with the output offset atomically and finds them after reopening', async () => {
    const store = await PartitionStore.open(dir, { windowMs: 28 * DAY, minBloomCapacity: 100 });
    expect(store.outputOffset).toBe(-1);
    await store.record(
      [
        { key: 'web:a', receivedAtMs: 1_000 },
        { key: 'web:b', receivedAtMs: 2_000 },
      ],
      41,
    );
    expect((await store.lookup(['web:a', 'web:c'])).get('web:a')).toBe(1_000);
    await store.close();

    const reopened = await PartitionStore.open(dir, { windowMs: 28 * DAY, minBloomCapacity: 100 });
    expect(reopened.outputOffset).toBe(41);
    expect(reopened.size).toBe(2);
    const found = await reopened.lookup(['web:a', 'web:b', 'web:zz']);
    expect([...found.keys()].sort()).toEqual(['web:a', 'web:b']);
    await reopened.close();
  });

  it('purges keys older than the window by stream time and keeps newer ones', async () => {
    const windowMs = 28_000;
    const store = await PartitionStore.open(dir, { windowMs, minBloomCapacity: 100 });
    const t0 = 1_700_000_000_000;
    await store.record([{ key: 's:old', receivedAtMs: t0 }], 0);
    await store.record([{ key: 's:mid', receivedAtMs: t0 + 20_000 }], 1);
    await store.record([{ key: 's:new', receivedAtMs: t0 + 40_000 }], 2);
    const purged = await store.purgeExpired();
    expect(purged).toBe(1);
    const found = await store.lookup(['s:old', 's:mid', 's:new']);
    expect([...found.keys()].sort()).toEqual(['s:mid', 's:new']);
    expect(store.size).toBe(2);
    await store.close();
  });

  it('counts a key re-accepted after its window once', async () => {
    const store = await PartitionStore.open(dir, { windowMs: 1_000, minBloomCapacity: 100 });
    await store.record([{ key: 's:a', receivedAtMs: 1_000 }], 0);
    await store.record([{ key: 's:a', receivedAtMs: 5_000, replaces: true }], 1);
    expect(store.size).toBe(1);
    expect((await store.lookup(['s:a'])).get('s:a')).toBe(5_000);
    await store.close();
  });

  it('grows its filter past the initial capacity without losing keys', async () => {
    const store = await PartitionStore.open(dir, { windowMs: DAY, minBloomCapacity: 10 });
    const entries = Array.from({ length: 100 }, (_, i) => ({ key: `s:${i}`, receivedAtMs: 5_000 }));
    await store.record(entries, 99);
    expect(store.size).toBe(100);
    expect((await store.lookup(entries.map((e) => e.key))).size).toBe(100);
    await store.close();
  });
});
