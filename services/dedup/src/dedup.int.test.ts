import fs from 'node:fs';
import { HEADER_ERROR, topicNames } from '@cdp/kafka';
import { readTopic } from '@cdp/kafka/testing';
import { metricValue } from '@cdp/testkit';
import {
  createDedupTestEnv,
  envelope,
  readOutputKeys,
  recordKey,
  startDedup,
  waitReady,
  type DedupProcess,
  type DedupTestEnv,
} from './testing/dedup-harness';

const WINDOW_MS = 60_000;

function counts(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

describe('dedup against the real broker', () => {
  let env: DedupTestEnv;
  let proc: DedupProcess | undefined;
  afterEach(() => env?.close());

  it('drops copies inside the window, passes copies across it, and sends poison to the DLQ', async () => {
    env = await createDedupTestEnv('window');
    const topics = topicNames(env.prefix);
    proc = await startDedup(env, { DEDUP_WINDOW_MS: String(WINDOW_MS) });
    await waitReady(proc);
    const t0 = new Date('2026-01-01T00:00:00Z').getTime();
    await env.producer.send(topics.ingest, [
      envelope('web', 'a', new Date(t0)),
      envelope('web', 'b', new Date(t0)),
      envelope('web', 'a', new Date(t0 + 1_000)), // inside the window
      envelope('app', 'a', new Date(t0 + 1_000)), // same messageId, other source: not a copy
      { key: 'web:poison', value: '{"v":1,"no":"receivedAt"}' },
      { key: null, value: 'garbage' },
      // An envelope without its event, and one whose key names another message.
      { key: 'web:nomsg', value: JSON.stringify({ v: 1, sourceId: 'web', messageId: 'nomsg', receivedAt: new Date(t0).toISOString() }) },
      { key: 'web:other', value: envelope('web', 'mismatch', new Date(t0)).value },
    ]);
    await env.producer.send(topics.ingest, [
      envelope('web', 'b', new Date(t0 + 30_000)), // still inside
      envelope('web', 'a', new Date(t0 + WINDOW_MS + 5_000)), // a full window later: passes
    ]);
    const out = await readOutputKeys(env, topics.deduped, 4);
    expect(counts(out)).toEqual(
      new Map([
        ['web:a', 2],
        ['web:b', 1],
        ['app:a', 1],
      ]),
    );
    const dlq = await readTopic(env.kafka, topics.dlq, 4, { quietMs: 3_000, timeoutMs: 90_000 });
    const reasons = Object.fromEntries(dlq.map((r) => [recordKey(r), r.headers[HEADER_ERROR]]));
    expect(dlq.map(recordKey).sort()).toEqual(['(null key)', 'web:nomsg', 'web:other', 'web:poison']);
    expect(reasons['web:nomsg']).toMatch(/no message/);
    expect(reasons['web:other']).toMatch(/does not match/);
    const metrics = await proc.metrics();
    expect(metricValue(metrics, 'cdp_dedup_duplicates_total')).toBe(2);
    expect(metricValue(metrics, 'cdp_dedup_dead_lettered_total')).toBe(4);
  });

  it('publishes nothing new when the same input is delivered again after a restart', async () => {
    env = await createDedupTestEnv('redeliver');
    const topics = topicNames(env.prefix);
    const batch = Array.from({ length: 50 }, (_, i) => envelope('web', `m${i}`, new Date(Date.UTC(2026, 0, 1, 0, 0, i))));
    proc = await startDedup(env);
    await waitReady(proc);
    await env.producer.send(topics.ingest, batch);
    expect(await readOutputKeys(env, topics.deduped, 50)).toHaveLength(50);
    expect(await proc.kill('SIGTERM')).toBe(0);

    proc = await startDedup(env);
    await waitReady(proc);
    await env.producer.send(topics.ingest, batch);
    await env.producer.send(topics.ingest, [envelope('web', 'marker', new Date(Date.UTC(2026, 0, 1, 0, 1)))]);
    const out = await readOutputKeys(env, topics.deduped, 51);
    expect(out).toHaveLength(51);
    expect(new Set(out).size).toBe(51);
  });

  it('purges keys older than the window from the store', async () => {
    env = await createDedupTestEnv('purge', 1);
    const topics = topicNames(env.prefix);
    proc = await startDedup(env, { DEDUP_WINDOW_MS: '10000', DEDUP_PURGE_INTERVAL_MS: '300' });
    await waitReady(proc);
    const t0 = Date.UTC(2026, 0, 1);
    await env.producer.send(
      topics.ingest,
      Array.from({ length: 20 }, (_, i) => envelope('web', `old${i}`, new Date(t0))),
    );
    await readOutputKeys(env, topics.deduped, 20);
    // Stream time moves two windows on: the old keys leave the window and the store.
    await env.producer.send(topics.ingest, [envelope('web', 'new', new Date(t0 + 20_000))]);
    await readOutputKeys(env, topics.deduped, 21);
    let metrics = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      metrics = await proc.metrics();
      if (metricValue(metrics, 'cdp_dedup_purged_keys_total') >= 20) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(metricValue(metrics, 'cdp_dedup_purged_keys_total')).toBe(20);
    expect(metricValue(metrics, 'cdp_dedup_store_keys')).toBe(1);
  });

  it('rebuilds a lost store from cdp.deduped and still drops copies of earlier events', async () => {
    env = await createDedupTestEnv('volume');
    const topics = topicNames(env.prefix);
    const first = Array.from({ length: 40 }, (_, i) => envelope('web', `v${i}`, new Date(Date.UTC(2026, 0, 1, 0, 0, i))));
    proc = await startDedup(env);
    await waitReady(proc);
    await env.producer.send(topics.ingest, first);
    expect(await readOutputKeys(env, topics.deduped, 40)).toHaveLength(40);
    await proc.kill('SIGKILL');

    fs.rmSync(env.dataDir, { recursive: true, force: true });
    proc = await startDedup(env);
    await waitReady(proc);
    await env.producer.send(topics.ingest, first.slice(0, 20)); // copies of earlier events
    await env.producer.send(topics.ingest, [envelope('web', 'after', new Date(Date.UTC(2026, 0, 1, 0, 2)))]);
    const out = await readOutputKeys(env, topics.deduped, 41);
    expect(out).toHaveLength(41);
    expect(new Set(out).size).toBe(41);
    const metrics = await proc.metrics();
    expect(metricValue(metrics, 'cdp_dedup_repaired_keys_total')).toBe(40);
    expect(metricValue(metrics, 'cdp_dedup_duplicates_total')).toBe(20);
  });
});
