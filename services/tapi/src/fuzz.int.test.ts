import zlib from 'node:zlib';
import { decodeEnvelope, validateMessage, type Envelope } from '@cdp/events';
import { TopicCollector } from '@cdp/kafka/testing';
import { basicAuth, createTapiTestEnv, waitReady, WRITE_KEY, type InProcessTapi, type TapiTestEnv } from './testing/harness';

/** mulberry32: a fixed seed makes every run generate the same 10,000 bodies. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATHS = ['/v1/track', '/v1/identify', '/v1/batch', '/v1/b', '/v1/import', '/v1/t', '/v1/alias', '/v1/group', '/v1/page'];

function generate(r: () => number, i: number): { path: string; body: Buffer; headers: Record<string, string> } {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const headers: Record<string, string> = {
    Authorization: basicAuth(WRITE_KEY),
    'Content-Type': pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded']),
  };
  const path = pick(PATHS);
  const weird = (): unknown =>
    pick<() => unknown>([
      () => null,
      () => 42,
      () => 'x'.repeat(Math.floor(r() * 40_000)),
      () => [1, 'a', {}],
      () => ({ nested: { deeper: [true] } }),
      () => -0.0001,
      () => '\u0000\ud800',
      () => ({}),
    ])();
  const event = (): Record<string, unknown> => {
    const e: Record<string, unknown> = {
      type: pick(['track', 'identify', 'alias', 'group', 'page', 'nope', 7]),
      messageId: `fz-${i}-${Math.floor(r() * 1e6)}`,
      userId: 'fuzz-user',
      event: 'Fuzz',
    };
    for (const k of [
      'type',
      'messageId',
      'userId',
      'anonymousId',
      'event',
      'properties',
      'context',
      'traits',
      'timestamp',
      'sentAt',
      'previousId',
      'groupId',
      'integrations',
    ]) {
      if (r() < 0.15) e[k] = weird();
    }
    return e;
  };
  let text: string;
  const kind = r();
  if (kind < 0.15)
    text = `{"type":"track",${'"a":1,'.repeat(Math.floor(r() * 10))}`; // truncated JSON
  else if (kind < 0.25)
    text = '['.repeat(Math.floor(r() * 50_000)) + ']'.repeat(Math.floor(r() * 10)); // deep nesting
  else if (kind < 0.3) {
    let deep = '1';
    for (let d = 0; d < 500; d++) deep = `{"d":${deep}}`;
    text = JSON.stringify({ ...event(), properties: JSON.parse(deep) });
  } else if (kind < 0.35) text = JSON.stringify(weird());
  else if (kind < 0.75)
    text = JSON.stringify(
      path.includes('b') || path.includes('import')
        ? { batch: Array.from({ length: Math.floor(r() * 5) }, event), context: weird() }
        : event(),
    );
  else text = JSON.stringify({ batch: weird(), sentAt: weird() });
  let body = Buffer.from(text);
  const enc = r();
  if (enc < 0.1) {
    body = zlib.gzipSync(body);
    headers['Content-Encoding'] = 'gzip';
  } else if (enc < 0.13) {
    body = body.subarray(0, Math.floor(body.length / 2));
    headers['Content-Encoding'] = 'gzip'; // not gzip at all
  } else if (enc < 0.15) {
    body = zlib.gzipSync(Buffer.alloc(8 * 1024 * 1024, 0x7b)); // bomb
    headers['Content-Encoding'] = 'gzip';
  } else if (enc < 0.17) {
    headers['Content-Encoding'] = 'deflate';
    body = zlib.deflateSync(body);
  }
  return { path, body, headers };
}

describe('fuzz', () => {
  let env: TapiTestEnv;
  let tapi: InProcessTapi;
  beforeAll(async () => {
    env = await createTapiTestEnv('fuzz');
    tapi = await env.start();
    await waitReady(tapi);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('10,000 generated bodies: always an HTTP answer, bounded memory, nothing invalid published', async () => {
    const r = rng(20261124);
    const statuses: Record<number, number> = {};
    const total = 10_000;
    let next = 0;
    const heapSamples: number[] = [];
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const { path, body, headers } = generate(r, i);
        const res = await fetch(`${tapi.url}${path}`, { method: 'POST', headers, body });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (i % 1_000 === 0) heapSamples.push(process.memoryUsage().heapUsed);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const answered = Object.values(statuses).reduce((a, b) => a + b, 0);
    expect(answered).toBe(total);
    expect(Object.keys(statuses).sort()).toEqual(['200', '400']);
    expect(statuses[200]).toBeGreaterThan(1_000);
    // Bounded: the heap after the run is not far above the heap after the first thousand.
    global.gc?.();
    expect(process.memoryUsage().heapUsed - heapSamples[1]).toBeLessThan(200 * 1024 * 1024);
    // The service still works.
    const ok = await fetch(`${tapi.url}/v1/track`, {
      method: 'POST',
      headers: { Authorization: basicAuth(WRITE_KEY) },
      body: JSON.stringify({ userId: 'u', event: 'After', messageId: 'fz-after' }),
    });
    expect(ok.status).toBe(200);

    // Everything published decodes as an envelope holding a valid Segment message.
    // 'invalid' marks a record that does not decode or does not hold a valid message.
    const collector = await new TopicCollector(env.kafka, env.topics.ingest, (message) => {
      try {
        const e = decodeEnvelope(message.value);
        return validateMessage(e.message).ok && e.messageId === e.message.messageId ? e : 'invalid';
      } catch {
        return 'invalid';
      }
    }).start();
    const isAfter = (e: Envelope | 'invalid') => e !== 'invalid' && e.messageId === 'fz-after';
    const sawAfter = await collector.until((all) => all.some(isAfter), 60_000);
    // The last request's event can be read before other partitions' earlier ones: read them all.
    await collector.catchUp(60_000);
    await collector.stop();
    const published = collector.all;
    const invalid = published.filter((e) => e === 'invalid').length;
    expect(sawAfter).toBe(true);
    expect(invalid).toBe(0);
    expect(published.length).toBeGreaterThan(500);
  });
});
