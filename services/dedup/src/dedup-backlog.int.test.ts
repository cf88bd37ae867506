import { topicNames, type OutboundMessage } from '@cdp/kafka';
import { testSize } from '@cdp/testkit';
import {
  createDedupTestEnv,
  NO_VIOLATIONS,
  produceBulk,
  readOutputKeys,
  sizedEnvelope,
  startDedup,
  violationCounts,
  waitReady,
  type DedupProcess,
  type DedupTestEnv,
} from './testing/dedup-harness';

const PARTITIONS = 4;
// A backlog far above one fetch (1 MiB) and one produce request per partition. CI size by
// default; DEDUP_TEST_BACKLOG_MB=200 for a bigger run (documented in the README).
const BACKLOG_MB = testSize('DEDUP_TEST_BACKLOG_MB', 24, { min: 2 * PARTITIONS });
const SMALL_EVENT_BYTES = 600;
/** Events near tapi's 32 KB limit. */
const LARGE_EVENT_BYTES = 32 * 1024 - 512;
/** Smaller than the broker default, so a sender that assumes 1 MiB fails: the limit must be read. */
const OUTPUT_MAX_MESSAGE_BYTES = 300_000;

describe('dedup draining a multi-MB backlog (real broker, real process)', () => {
  let env: DedupTestEnv;
  let proc: DedupProcess | undefined;
  afterEach(() => env?.close());

  it('publishes every id exactly once from a backlog of several MB per partition, with ~600-byte events and events near 32 KB', async () => {
    env = await createDedupTestEnv('backlog', PARTITIONS, { deduped: { 'max.message.bytes': String(OUTPUT_MAX_MESSAGE_BYTES) } });
    const topics = topicNames(env.prefix);
    const t0 = Date.UTC(2026, 0, 1);
    const messages: OutboundMessage[] = [];
    const expected = new Set<string>();
    const largeEvery = 200; // ~20 % of the bytes in events near 32 KB
    const total = Math.round((BACKLOG_MB * 1024 * 1024) / (SMALL_EVENT_BYTES * 1.2));
    for (let i = 0; i < total; i++) {
      const id = `b${i}`;
      messages.push(sizedEnvelope('web', id, new Date(t0 + i), i % largeEvery === 0 ? LARGE_EVENT_BYTES : SMALL_EVENT_BYTES));
      expected.add(`web:${id}`);
      // Client retries: a copy of an earlier event now and then.
      if (i % 50 === 7) messages.push(sizedEnvelope('web', `b${i - 5}`, new Date(t0 + i), SMALL_EVENT_BYTES));
    }
    // dedup is down while the backlog arrives (a restart under traffic).
    await produceBulk(env, topics.ingest, messages);

    proc = await startDedup(env);
    await waitReady(proc);
    const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 5_000, timeoutMs: 90_000 });
    expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
    expect(out).toHaveLength(expected.size);
  }, 180_000);

  it('sends a record larger than the output topic accepts to the DLQ, and the partition keeps flowing', async () => {
    env = await createDedupTestEnv('oversize', 1, { deduped: { 'max.message.bytes': '100000' } });
    const topics = topicNames(env.prefix);
    const t0 = Date.UTC(2026, 0, 1);
    proc = await startDedup(env);
    await waitReady(proc);
    await env.producer.send(topics.ingest, [
      sizedEnvelope('web', 'before', new Date(t0), SMALL_EVENT_BYTES),
      sizedEnvelope('web', 'huge', new Date(t0 + 1), 150_000), // accepted by cdp.ingest (1 MiB), not by cdp.deduped
      sizedEnvelope('web', 'after', new Date(t0 + 2), SMALL_EVENT_BYTES),
    ]);
    expect((await readOutputKeys(env, topics.deduped, 2)).sort()).toEqual(['web:after', 'web:before']);
    expect(await readOutputKeys(env, topics.dlq, 1)).toEqual(['web:huge']);
  });
});
