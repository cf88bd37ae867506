import { decide, readIngestRecord, readReceivedAt } from './decide';

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

describe('readIngestRecord', () => {
  const receivedAt = '2026-01-01T00:00:00.000Z';
  const value = (fields: Record<string, unknown>) =>
    Buffer.from(JSON.stringify({ v: 1, sourceId: 'web', messageId: 'm1', receivedAt, message: { type: 'track' }, ...fields }));

  it('reads key, source and receivedAt of a well-formed record', () => {
    expect(readIngestRecord('web:m1', value({}))).toEqual({ key: 'web:m1', sourceId: 'web', receivedAtMs: Date.parse(receivedAt) });
    // Message ids may contain colons; the key splits at the first one.
    expect(readIngestRecord('web:a:b', value({ messageId: 'a:b' })).key).toBe('web:a:b');
  });

  it.each([
    ['no key', null, value({}), /no key/],
    ['a key that is not sourceId:messageId', 'nocolon', value({}), /key/],
    ['a key naming another messageId', 'web:m2', value({}), /does not match/],
    ['a key naming another source', 'app:m1', value({}), /does not match/],
    ['no sourceId in the envelope', 'web:m1', value({ sourceId: undefined }), /sourceId or messageId/],
    ['no message', 'web:m1', value({ message: undefined }), /no message/],
    ['a message that is not an object', 'web:m1', value({ message: 'track' }), /no message/],
    ['no receivedAt', 'web:m1', value({ receivedAt: undefined }), /receivedAt/],
    ['another envelope version', 'web:m1', value({ v: 2 }), /version/],
    ['a value that is not an object', 'web:m1', Buffer.from('[1]'), /not a JSON object/],
    ['a value that is not JSON', 'web:m1', Buffer.from('nope'), /JSON/],
    ['no value', 'web:m1', null, /empty/],
  ])('rejects a record with %s', (_what, key, v, reason) => {
    expect(() => readIngestRecord(key, v)).toThrow(reason);
  });
});
