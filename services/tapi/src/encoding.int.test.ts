import zlib from 'node:zlib';
import type { Envelope } from '@cdp/events';
import { metricValue } from '@cdp/testkit';
import {
  basicAuth,
  createTapiTestEnv,
  EnvelopeCollector,
  startTapiProcess,
  WRITE_KEY,
  type TapiProcess,
  type TapiTestEnv,
} from './testing/harness';

/** JSON.stringify escapes exactly the lone surrogates (a valid pair is written as is). */
const LONE_SURROGATE_ESCAPE = /\\ud[89a-f][0-9a-f]{2}/i;

describe('tapi process: request encoding', () => {
  let env: TapiTestEnv;
  let tapi: TapiProcess;
  let collector: EnvelopeCollector;
  beforeAll(async () => {
    env = await createTapiTestEnv('encoding');
    tapi = await startTapiProcess(env);
    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
  });
  afterAll(async () => {
    await tapi?.stop('SIGKILL');
    await collector?.stop();
    await env?.close();
  });

  const post = (path: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(`${tapi.url}${path}`, {
      method: 'POST',
      headers: { Authorization: basicAuth(WRITE_KEY), 'Content-Type': 'application/json', ...headers },
      body,
    });

  it('answers 400 bad_encoding to a body that is not UTF-8, plain or gzipped, and publishes nothing of it', async () => {
    const invalid = Buffer.concat([
      Buffer.from('{"userId":"u","messageId":"enc-bad-1","event":"caf'),
      Buffer.from([0xe9]), // Latin-1 é: not UTF-8
      Buffer.from('"}'),
    ]);
    for (const [body, headers] of [
      [invalid, {}],
      [zlib.gzipSync(Buffer.from(invalid.toString('latin1').replace('enc-bad-1', 'enc-bad-2'), 'latin1')), { 'Content-Encoding': 'gzip' }],
    ] as const) {
      const res = await post('/v1/track', body, headers);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: { code: 'bad_encoding', message: expect.any(String) } });
    }
    // A UTF-8 BOM is still accepted.
    const bom = await post(
      '/v1/track',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ userId: 'u', event: 'café', messageId: 'enc-bom' }))]),
    );
    expect(bom.status).toBe(200);
    await collector.waitForIds(['enc-bom']);
    await collector.catchUp();
    expect(collector.byId.has('enc-bad-1')).toBe(false);
    expect(collector.byId.has('enc-bad-2')).toBe(false);
    expect(collector.byId.get('enc-bom')?.[0].message.event).toBe('café');
  });

  it('drops events whose ids hold a lone surrogate (invalid_id) and replaces lone surrogates elsewhere with U+FFFD', async () => {
    // Written by hand: JSON escapes are the only way a lone surrogate gets into the parsed body.
    const body =
      '{"context":{"page":{"title":"t\\udc00"}},"batch":[' +
      '{"type":"track","event":"E","userId":"\\ud800","messageId":"enc-lone-user"},' +
      '{"type":"track","event":"E","anonymousId":"a\\udfff","messageId":"enc-lone-anon"},' +
      '{"type":"track","event":"E","userId":"u","messageId":"enc-lone-\\ud83d"},' +
      '{"type":"track","event":"E\\ud800x","userId":"u","messageId":"enc-kept","properties":{"k\\udbff":["v\\udc00",{"deep":"\\ud800"}],"pair":"\\ud83d\\ude00"}}' +
      ']}';
    const before = metricValue(await tapi.metrics(), 'cdp_tapi_events_dropped_total', { reason: 'invalid_id' });
    const res = await post('/v1/batch', body);
    expect(res.status).toBe(200);
    // A single-event path too.
    const single = await post('/v1/identify', '{"userId":"x\\udc00y","messageId":"enc-lone-single"}');
    expect(single.status).toBe(200);
    const [kept] = await collector.waitForIds(['enc-kept']);
    await collector.catchUp();
    expect(metricValue(await tapi.metrics(), 'cdp_tapi_events_dropped_total', { reason: 'invalid_id' }) - before).toBe(4);
    const published = [...collector.byId.keys()].filter((id) => id.startsWith('enc-lone'));
    expect(published).toEqual([]);
    expect(kept.message.event).toBe('E\ufffdx');
    expect(kept.message.properties).toEqual({ 'k\ufffd': ['v\ufffd', { deep: '\ufffd' }], pair: '😀' });
    expect((kept.message.context as { page: { title: string } }).page.title).toBe('t\ufffd');
    const withLone = collector.all.filter((e: Envelope) => LONE_SURROGATE_ESCAPE.test(JSON.stringify(e)));
    expect(withLone.map((e) => e.messageId)).toEqual([]);
  });
});
