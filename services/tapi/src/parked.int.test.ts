// A record Kafka refuses for good (larger than the topic's max.message.bytes) must not wedge the
// spool: it is parked under <SPOOL_DIR>/parked, later requests reach Kafka, and the parked
// record can be listed, re-sent once the limit is raised, or discarded (`cli.js spool parked`).
import path from 'node:path';
import { ConfigResourceTypes } from 'kafkajs';
import { topicSpecs } from '@cdp/kafka';
import { metricValue } from '@cdp/testkit';
import {
  basicAuth,
  createTapiTestEnv,
  EnvelopeCollector,
  metrics,
  runTapiCli,
  waitReady,
  WRITE_KEY,
  type CliResult,
  type InProcessTapi,
  type TapiTestEnv,
} from './testing/harness';

describe('records Kafka refuses for good are parked', () => {
  let env: TapiTestEnv;
  let collector: EnvelopeCollector;
  let tapi: InProcessTapi | undefined;

  beforeAll(async () => {
    env = await createTapiTestEnv('parked', { keepWarnings: true });
    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
  });
  afterAll(async () => {
    await tapi?.stop();
    await collector?.stop();
    await env?.close();
  });

  /** Sets cdp.ingest's max.message.bytes (alterConfigs replaces the topic's dynamic configs: send them all). */
  async function setIngestLimit(bytes: number): Promise<void> {
    const admin = env.kafka.admin();
    await admin.connect();
    try {
      const configs = { ...topicSpecs({ prefix: env.prefix }).ingest.configs, 'max.message.bytes': String(bytes) };
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: env.topics.ingest,
            configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
          },
        ],
      });
    } finally {
      await admin.disconnect();
    }
  }

  async function track(messageId: string, padBytes = 0): Promise<number> {
    const res = await fetch(`${tapi!.url}/v1/track`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: basicAuth(WRITE_KEY) },
      body: JSON.stringify({ userId: 'parked-user', event: 'E', messageId, properties: { pad: 'x'.repeat(padBytes) } }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  const cli = (...args: string[]) =>
    runTapiCli(['spool', 'parked', ...args, '--dir', path.join(env.dir, 'spool')], {
      KAFKA_BROKERS: env.brokers,
      CDP_TOPIC_PREFIX: env.prefix,
      PUBLISH_TIMEOUT_MS: '1500',
      LOG_LEVEL: 'warn',
    });
  const lines = (r: CliResult) =>
    r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('parks the refused record, keeps the spool flowing without failover, then lists, re-sends and discards it', async () => {
    await setIngestLimit(4_096);
    tapi = await env.start({ PUBLISH_TIMEOUT_MS: '1500' });
    await waitReady(tapi);

    // Two events of ~6 KB (under tapi's 32 KB event limit, over the topic's 4 KB) among small ones.
    const small = Array.from({ length: 30 }, (_, i) => `parked-small-${i}`);
    const statuses: number[] = [];
    statuses.push(await track('parked-big-1', 6_000));
    for (const id of small.slice(0, 15)) statuses.push(await track(id));
    statuses.push(await track('parked-big-2', 6_000));
    for (const id of small.slice(15)) statuses.push(await track(id));
    expect(statuses.every((s) => s === 200)).toBe(true);

    const arrived = await collector.waitForIds(small, 20_000);
    expect({
      missing: small.filter((id) => !collector.byId.has(id)),
      publisher: tapi.publisher.describe(),
      logs: arrived.length === small.length ? '' : env.recentLogs().slice(-3_000),
    }).toEqual({
      missing: [],
      publisher: expect.stringContaining('primary connected'),
      logs: '',
    });
    for (let i = 0; i < 100 && tapi.spool.depth > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(tapi.spool.depth).toBe(0);
    const text = await metrics(tapi);
    expect(metricValue(text, 'cdp_tapi_spool_parked_records_total')).toBe(2);
    expect(metricValue(text, 'cdp_tapi_spool_parked_records')).toBe(2);
    expect(metricValue(text, 'cdp_tapi_spool_parked_bytes')).toBeGreaterThan(12_000);
    // A refusal is about the record, not the cluster: no failure counted toward failover.
    expect(metricValue(text, 'cdp_tapi_publish_failures_total')).toBe(0);
    expect(tapi.publisher.describe()).not.toContain('failures');
    expect(env.recentLogs()).toContain('record parked');

    // list: both, with their keys and Kafka's reason.
    const listed = await cli('list');
    expect({ code: listed.code, log: listed.code === 0 ? '' : listed.stderr }).toEqual({ code: 0, log: '' });
    const entries = lines(listed);
    expect(entries.map((e) => [e.key, e.reason])).toEqual([
      ['web:parked-big-1', 'MESSAGE_TOO_LARGE'],
      ['web:parked-big-2', 'MESSAGE_TOO_LARGE'],
    ]);
    const [big1, big2] = entries.map((e) => String(e.id));

    // resend while the topic still refuses it: kept, exit 1.
    const refused = await cli('resend', '--id', big1);
    expect({ code: refused.code, result: lines(refused) }).toEqual({
      code: 1,
      result: [expect.objectContaining({ id: big1, outcome: 'refused' })],
    });
    expect(lines(await cli('list')).map((e) => e.id)).toEqual([big1, big2]);

    // resend after raising the limit: delivered and gone from the parked list.
    await setIngestLimit(1_048_588);
    const resent = await cli('resend', '--id', big1);
    expect({ code: resent.code, result: lines(resent), log: resent.code === 0 ? '' : resent.stderr }).toEqual({
      code: 0,
      result: [expect.objectContaining({ id: big1, outcome: 'sent' })],
      log: '',
    });
    expect(await collector.waitForIds(['parked-big-1'])).toHaveLength(1);

    // discard: gone without being sent.
    const discarded = await cli('discard', '--id', big2);
    expect({ code: discarded.code, result: lines(discarded) }).toEqual({
      code: 0,
      result: [expect.objectContaining({ id: big2, outcome: 'discarded' })],
    });
    expect(lines(await cli('list'))).toEqual([]);
    await collector.catchUp();
    expect(collector.byId.has('parked-big-2')).toBe(false);
  });
});
