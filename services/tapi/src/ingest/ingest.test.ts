import zlib from 'node:zlib';
import { requestClock } from '@cdp/events';
import { resolveWriteKey, writeKeyFromAuthorization } from './auth';
import { BadRequest, decodeBody, mayHoldLoneSurrogates, parseJsonBody } from './body';
import { decodePixelData, depthExceeds, extractEvents, prepareEvent, replaceLoneSurrogates, type EnrichContext } from './normalize';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

describe('write key', () => {
  it('reads Basic with and without the colon, then the body', () => {
    expect(writeKeyFromAuthorization(basic('wk_1:'))).toBe('wk_1');
    expect(writeKeyFromAuthorization(basic('wk_1'))).toBe('wk_1');
    expect(writeKeyFromAuthorization(basic('wk_1:ignored'))).toBe('wk_1');
    expect(writeKeyFromAuthorization('Bearer abc')).toBeUndefined();
    expect(writeKeyFromAuthorization(basic(':'))).toBeUndefined();
    expect(resolveWriteKey(undefined, { writeKey: 'wk_b' })).toBe('wk_b');
    expect(resolveWriteKey('Bearer t', { writeKey: 'wk_b' })).toBe('wk_b');
    expect(resolveWriteKey(basic('wk_h:'), { writeKey: 'wk_b' })).toBe('wk_h');
    expect(resolveWriteKey(undefined, { writeKey: 42 })).toBeUndefined();
  });
});

describe('body decoding', () => {
  const json = Buffer.from('{"a":1}');
  it('inflates gzip, deflate (zlib and raw) and brotli', async () => {
    expect(await decodeBody(zlib.gzipSync(json), 'gzip', 1000)).toEqual(json);
    expect(await decodeBody(zlib.deflateSync(json), 'deflate', 1000)).toEqual(json);
    expect(await decodeBody(zlib.deflateRawSync(json), 'deflate', 1000)).toEqual(json);
    expect(await decodeBody(zlib.brotliCompressSync(json), 'br', 1000)).toEqual(json);
    expect(await decodeBody(json, undefined, 1000)).toEqual(json);
    expect(await decodeBody(json, 'identity', 1000)).toEqual(json);
  });

  it('rejects a gzip bomb without inflating it all', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(50 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    const before = process.memoryUsage().arrayBuffers;
    const error = await decodeBody(bomb, 'gzip', 500 * 1024).catch((e) => e);
    expect(error).toBeInstanceOf(BadRequest);
    expect((error as BadRequest).reason).toBe('payload_too_large');
    // Far less than the 50 MB it would inflate to (compare with the same process's baseline).
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(20 * 1024 * 1024);
  });

  it('rejects corrupt and unknown encodings as bad_encoding', async () => {
    for (const [body, enc] of [
      [Buffer.from('not gzip'), 'gzip'],
      [zlib.gzipSync(json).subarray(0, 10), 'gzip'],
      [json, 'compress'],
      [json, 'gzip, br'],
    ] as const) {
      const e = await decodeBody(body, enc, 1000).catch((x) => x);
      expect(e).toBeInstanceOf(BadRequest);
      expect((e as BadRequest).reason).toBe('bad_encoding');
    }
  });

  it('parses JSON objects only', () => {
    expect(parseJsonBody(Buffer.from('\ufeff{"x":1}'))).toEqual({ x: 1 });
    expect(() => parseJsonBody(Buffer.from('{x'))).toThrow(/not valid JSON/);
    expect(() => parseJsonBody(Buffer.from('[1]'))).toThrow(/JSON object/);
    expect(() => parseJsonBody(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toThrow(/UTF-8/);
  });

  it('spots bodies that may hold lone surrogates by their escapes', () => {
    expect(mayHoldLoneSurrogates(Buffer.from('{"a":"\\uD800"}'))).toBe(true);
    expect(mayHoldLoneSurrogates(Buffer.from('{"a":"\\udc00"}'))).toBe(true);
    expect(mayHoldLoneSurrogates(Buffer.from('{"a":"\\u00e9 😀"}'))).toBe(false);
  });
});

describe('events', () => {
  const limits = { maxEventBytes: 1000, maxBatchEvents: 3 };
  const receivedAt = new Date('2026-03-01T12:00:00.000Z');
  const ctx = (over: Partial<EnrichContext> = {}): EnrichContext => ({
    sourceId: 'web',
    clock: requestClock(receivedAt),
    clientIp: '10.0.0.1',
    shared: {},
    ...over,
  });

  it('drops batch items past the limit and refuses oversize events', () => {
    const batch = { batch: [1, 2, 3, 4, 5] };
    const out = extractEvents({ kind: 'batch' }, batch, 20, limits);
    expect(out.items).toEqual([1, 2, 3]);
    expect(out.overflow).toBe(2);
    const big = { batch: [{ x: 'y'.repeat(2000) }] };
    expect(() => extractEvents({ kind: 'batch' }, big, 2100, limits)).toThrow(BadRequest);
    expect(() => extractEvents({ kind: 'single', type: 'track' }, {}, 1001, limits)).toThrow(/exceeds/);
    expect(() => extractEvents({ kind: 'batch' }, { batch: 'no' }, 10, limits)).toThrow(/batch/);
  });

  it('corrects a client clock 1 h ahead and keeps originalTimestamp', () => {
    const r = prepareEvent(
      { type: 'track', event: 'E', userId: 'u', timestamp: '2026-03-01T12:59:58.000Z', sentAt: '2026-03-01T13:00:00.000Z' },
      ctx(),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.envelope.message.timestamp).toBe('2026-03-01T11:59:58.000Z');
    expect(r.envelope.message.originalTimestamp).toBe('2026-03-01T12:59:58.000Z');
    expect(r.envelope.receivedAt).toBe(receivedAt.toISOString());
  });

  it('fills messageId, merges batch context/integrations, sets context.ip unless set, strips writeKey', () => {
    const shared = { context: { library: { name: 'x' }, locale: 'en' }, integrations: { All: false } };
    const r = prepareEvent({ type: 'identify', userId: 7, writeKey: 'secret', context: { locale: 'fr' } }, ctx({ shared }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const m = r.envelope.message as Record<string, unknown>;
    expect(r.envelope.messageId).toMatch(/^api-[0-9a-f-]{36}$/);
    expect(r.key).toBe(`web:${r.envelope.messageId}`);
    expect(m.userId).toBe('7');
    expect(m.writeKey).toBeUndefined();
    expect(m.context).toEqual({ library: { name: 'x' }, locale: 'fr', ip: '10.0.0.1' });
    expect(m.integrations).toEqual({ All: false });
    expect(JSON.parse(r.value)).toEqual(r.envelope);
    const withIp = prepareEvent({ type: 'page', anonymousId: 'a', context: { ip: '1.2.3.4' } }, ctx());
    expect(withIp.ok && (withIp.envelope.message.context as { ip: string }).ip).toBe('1.2.3.4');
  });

  it('lets the path type win and drops invalid events with a reason', () => {
    const t = prepareEvent({ type: 'identify', event: 'E', userId: 'u' }, ctx({ impliedType: 'track' }));
    expect(t.ok && t.envelope.message.type).toBe('track');
    const cases: Array<[unknown, string]> = [
      ['str', 'not_an_object'],
      [{ type: 'nope', userId: 'u' }, 'invalid_type'],
      [{ type: 'track', event: 'E' }, 'missing_user_id'],
      [{ type: 'track', userId: 'u' }, 'missing_event'],
      [{ type: 'alias', userId: 'u' }, 'missing_previous_id'],
      [{ type: 'track', userId: 'u', event: 'E', messageId: 'm'.repeat(101) }, 'message_id_too_long'],
      [{ type: 'track', userId: 'u', event: 'E', properties: [1] }, 'invalid_field'],
    ];
    for (const [raw, reason] of cases) {
      const r = prepareEvent(raw, ctx());
      expect({ raw, reason: r.ok ? 'ok' : r.reason }).toEqual({ raw, reason });
    }
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const r = prepareEvent({ type: 'track', userId: 'u', event: 'E', properties: deep }, ctx());
    expect(r.ok ? 'ok' : r.reason).toBe('too_deep');
    expect(depthExceeds({ a: [{ b: 1 }] }, 3)).toBe(false);
    expect(depthExceeds({ a: [{ b: {} }] }, 3)).toBe(true);
  });

  it('drops events with a lone surrogate in an id and replaces the others with U+FFFD', () => {
    for (const field of ['messageId', 'userId', 'anonymousId']) {
      const r = prepareEvent({ type: 'track', userId: 'u', event: 'E', [field]: 'x\ud800' }, ctx({ loneSurrogates: true }));
      expect({ field, reason: r.ok ? 'ok' : r.reason }).toEqual({ field, reason: 'invalid_id' });
    }
    const value: Record<string, unknown> = { a: 'x\udc00', 'k\ud800': ['\ud83d\ude00', { b: '\udfff' }] };
    replaceLoneSurrogates(value, 64);
    expect(value).toEqual({ a: 'x\ufffd', 'k\ufffd': ['\ud83d\ude00', { b: '\ufffd' }] });
    const shallow = { a: { b: '\ud800' } };
    replaceLoneSurrogates(shallow, 1); // stops at its depth bound
    expect(shallow.a.b).toBe('\ud800');
  });

  it('decodes pixel data in base64, url-safe base64 or plain JSON', () => {
    const obj = { writeKey: 'k', userId: 'u?>' };
    expect(decodePixelData(Buffer.from(JSON.stringify(obj)).toString('base64'))).toEqual(obj);
    expect(decodePixelData(Buffer.from(JSON.stringify(obj)).toString('base64url'))).toEqual(obj);
    expect(decodePixelData(JSON.stringify(obj))).toEqual(obj);
    expect(decodePixelData('%%%')).toBeUndefined();
    expect(decodePixelData(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64'))).toBeUndefined();
    expect(decodePixelData(undefined)).toBeUndefined();
  });
});
