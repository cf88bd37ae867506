import { decide, readReceivedAt } from './decide';

describe('decide', () => {
  const W = 1_000;
  it('drops copies inside the window, within the chunk and against the store', () => {
    const seen = new Map([['s:old', 100]]);
    const { accepted, duplicates } = decide(
      [
        { key: 's:a', receivedAtMs: 500 },
        { key: 's:a', receivedAtMs: 600 },
        { key: 's:old', receivedAtMs: 900 },
        { key: 's:b', receivedAtMs: 900 },
      ],
      seen,
      W,
    );
    expect(accepted.map((a) => a.key)).toEqual(['s:a', 's:b']);
    expect(duplicates.map((d) => d.key)).toEqual(['s:a', 's:old']);
  });
  it('passes a copy that arrives a full window or more after the first', () => {
    const seen = new Map([['s:x', 100]]);
    const { accepted } = decide([{ key: 's:x', receivedAtMs: 1_100 }], seen, W);
    expect(accepted).toHaveLength(1);
    expect(seen.get('s:x')).toBe(1_100);
  });
});

describe('readReceivedAt', () => {
  it('reads receivedAt of a v1 envelope and rejects anything else', () => {
    expect(readReceivedAt(Buffer.from('{"v":1,"receivedAt":"2026-01-01T00:00:00.000Z"}'))).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(() => readReceivedAt(Buffer.from('{"v":1}'))).toThrow(/receivedAt/);
    expect(() => readReceivedAt(Buffer.from('{"v":2,"receivedAt":"2026-01-01T00:00:00Z"}'))).toThrow(/version/);
    expect(() => readReceivedAt(Buffer.from('nope'))).toThrow();
    expect(() => readReceivedAt(null)).toThrow(/empty/);
  });
});
