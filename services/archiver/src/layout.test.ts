import { groupPrefix, hourOf, manifestEntryKey, manifestPrefix, objectKey, spreadPrefix } from './layout';

describe('archive layout', () => {
  const origin = { topic: 'cdp.deduped', partition: 3, firstOffset: '1200' };

  it('names raw objects by spread prefix, source, day, hour, topic, partition and first offset', () => {
    const group = { kind: 'raw' as const, sourceId: 'src1', hour: hourOf('2026-12-04T21:59:59.999+01:00') };
    expect(group.hour).toBe('2026-12-04T20');
    expect(objectKey(group, origin)).toBe(`${spreadPrefix('src1', '2026-12-04T20')}/raw/src1/2026-12-04/20/cdp.deduped-3-1200.jsonl.gz`);
  });

  it('puts undelivered objects under their destination and refuses one without it', () => {
    const group = { kind: 'undelivered' as const, sourceId: 'src1', destinationId: 'd9', hour: '2026-12-04T20' };
    expect(groupPrefix(group)).toMatch(/^[0-9a-f]{4}\/undelivered\/src1\/d9\/2026-12-04\/20\/$/);
    expect(() => groupPrefix({ ...group, destinationId: undefined })).toThrow(/destinationId/);
    expect(manifestEntryKey(group, origin)).toBe(`${manifestPrefix('src1', '2026-12-04T20')}undelivered-d9-cdp.deduped-3-1200.json`);
  });

  it('spreads the hours of one source over different prefixes', () => {
    const prefixes = new Set(Array.from({ length: 24 }, (_, h) => spreadPrefix('src1', `2026-12-04T${String(h).padStart(2, '0')}`)));
    expect(prefixes.size).toBeGreaterThan(20);
  });

  it('refuses a receivedAt that is not a timestamp', () => {
    expect(() => hourOf('yesterday')).toThrow(/not a timestamp/);
  });
});
