import path from 'node:path';
import { regulationKey } from '@cdp/events';
import { metricValue, sleep } from '@cdp/testkit';
import {
  basicAuth,
  createTapiTestEnv,
  EnvelopeCollector,
  metrics,
  waitReady,
  WRITE_KEY,
  type InProcessTapi,
  type TapiTestEnv,
} from './testing/harness';

describe('GDPR suppression from cdp.regulations', () => {
  let env: TapiTestEnv;
  let collector: EnvelopeCollector;
  beforeAll(async () => {
    env = await createTapiTestEnv('suppress');
    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
  });
  afterAll(async () => {
    await collector?.stop();
    await env?.close();
  });

  const regulation = (userId: string, type: string) => ({
    key: regulationKey('main', userId),
    value: JSON.stringify({ regulationId: `r-${userId}-${type}`, type, userId, spaceId: 'main', requestedAt: new Date().toISOString() }),
  });

  async function send(tapi: InProcessTapi, userId: string, messageId: string): Promise<void> {
    const res = await fetch(`${tapi.url}/v1/track`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: basicAuth(WRITE_KEY) },
      body: JSON.stringify({ userId, event: 'E', messageId }),
    });
    expect(res.status).toBe(200);
  }

  it('drops a suppressed user across a restart, and lets them through after UNSUPPRESS', async () => {
    // Noise first, so the rebuild has to read past other users' records, tombstones included.
    await env.producer.send(env.topics.regulations, [
      regulation('other-1', 'SUPPRESS_ONLY'),
      regulation('other-2', 'SUPPRESS_WITH_DELETE'),
      { key: regulationKey('main', 'other-2'), value: null },
      regulation('gone', 'SUPPRESS_WITH_DELETE'),
    ]);
    let tapi = await env.start();
    await waitReady(tapi);
    expect(tapi.suppression!.set.size).toBe(2);
    await send(tapi, 'gone', 'sup-1');
    await send(tapi, 'other-2', 'sup-ok-1');
    await send(tapi, 'someone', 'sup-ok-2');
    await collector.catchUp();
    expect(collector.byId.has('sup-1')).toBe(false);
    expect(collector.byId.has('sup-ok-1')).toBe(true);
    expect(collector.byId.has('sup-ok-2')).toBe(true);
    expect(metricValue(await metrics(tapi), 'cdp_tapi_events_dropped_total', { reason: 'suppressed' })).toBeGreaterThanOrEqual(1);

    // Follows new records while running.
    await env.producer.send(env.topics.regulations, [regulation('late', 'SUPPRESS_ONLY')]);
    for (let i = 0; i < 200 && !tapi.suppression!.set.has('main', 'late'); i++) await sleep(50);
    await send(tapi, 'late', 'sup-late');

    await tapi.stop();
    tapi = await env.start();
    await waitReady(tapi);
    await send(tapi, 'gone', 'sup-2');
    await send(tapi, 'late', 'sup-late-2');
    await collector.catchUp();
    expect(collector.byId.has('sup-2')).toBe(false);
    expect(collector.byId.has('sup-late')).toBe(false);
    expect(collector.byId.has('sup-late-2')).toBe(false);

    await env.producer.send(env.topics.regulations, [regulation('gone', 'UNSUPPRESS')]);
    for (let i = 0; i < 200 && tapi.suppression!.set.has('main', 'gone'); i++) await sleep(50);
    await send(tapi, 'gone', 'sup-3');
    expect(await collector.waitForIds(['sup-3'])).toHaveLength(1);
  });

  it('becomes ready when transaction markers end the topic, applying committed records only', async () => {
    // A transactional writer leaves a control record (commit or abort marker) after its data:
    // the high watermark is one past the marker, never reached by a data record.
    const producer = env.kafka.producer({
      transactionalId: `tapi-test-regulations-${Date.now()}`,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    try {
      const committed = await producer.transaction();
      await committed.send({ topic: env.topics.regulations, messages: [regulation('tx-committed', 'SUPPRESS_ONLY')] });
      await committed.commit();
      const aborted = await producer.transaction();
      await aborted.send({ topic: env.topics.regulations, messages: [regulation('tx-aborted', 'SUPPRESS_ONLY')] });
      await aborted.abort();
    } finally {
      await producer.disconnect();
    }
    const tapi = await env.start({ SPOOL_DIR: path.join(env.dir, 'spool-tx') }); // the first test's tapi holds the default
    await waitReady(tapi, 20_000);
    expect(tapi.suppression!.set.has('main', 'tx-committed')).toBe(true);
    expect(tapi.suppression!.set.has('main', 'tx-aborted')).toBe(false);
    await send(tapi, 'tx-committed', 'sup-tx-1');
    await send(tapi, 'tx-aborted', 'sup-tx-2');
    await collector.catchUp();
    expect(collector.byId.has('sup-tx-1')).toBe(false);
    expect(await collector.waitForIds(['sup-tx-2'])).toHaveLength(1);
  });
});
