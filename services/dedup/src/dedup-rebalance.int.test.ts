import { topicNames, type OutboundMessage } from '@cdp/kafka';
import { sleep } from '@cdp/testkit';
import {
  createDedupTestEnv,
  envelope,
  feed,
  makeStreamWithDuplicates,
  NO_VIOLATIONS,
  readOutputKeys,
  startDedup,
  violationCounts,
  waitReady,
} from './testing/dedup-harness';

describe('dedup rebalance (two processes, real broker)', () => {
  it('keeps every unique messageId exactly once when a second process joins and later leaves under load', async () => {
    const env = await createDedupTestEnv('rebalance', 4);
    const topics = topicNames(env.prefix);
    const { messages, expected } = makeStreamWithDuplicates('web', 4_000, 0.1);
    try {
      const a = await startDedup(env);
      await waitReady(a);
      const feeding = feed(env, topics.ingest, messages, 50, 30);
      await sleep(3_000);
      const b = await startDedup(env);
      await waitReady(b);
      await sleep(5_000);
      expect(await b.kill('SIGTERM')).toBe(0); // scale-in: graceful leave
      await feeding;
      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 5_000, timeoutMs: 120_000 });
      expect(await a.kill('SIGTERM')).toBe(0);
      expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
      expect(out).toHaveLength(expected.size);
    } finally {
      await env.close();
    }
  });

  it('dead-letters each poison record once across takeovers (a second process joins, then leaves)', async () => {
    const env = await createDedupTestEnv('poison-takeover', 4);
    const topics = topicNames(env.prefix);
    // Slices of 10 good records then 10 poison ones, so chunks often end in poison: records
    // past the last one published to cdp.deduped, which the output alone cannot mark as done.
    const messages: OutboundMessage[] = [];
    const good = new Set<string>();
    const poison = new Set<string>();
    const t0 = Date.UTC(2026, 0, 1);
    for (let s = 0; s < 200; s++) {
      for (let i = 0; i < 10; i++) {
        const id = `g${s}-${i}`;
        messages.push(envelope('web', id, new Date(t0 + s)));
        good.add(`web:${id}`);
      }
      for (let i = 0; i < 10; i++) {
        const key = `web:p${s}-${i}`;
        messages.push({ key, value: '{"v":1,"no":"receivedAt"}' });
        poison.add(key);
      }
    }
    try {
      const a = await startDedup(env);
      await waitReady(a);
      const feeding = feed(env, topics.ingest, messages, 20, 30);
      await sleep(2_000);
      const b = await startDedup(env);
      await waitReady(b);
      await sleep(3_000);
      expect(await b.kill('SIGTERM')).toBe(0);
      await feeding;
      const out = await readOutputKeys(env, topics.deduped, good.size, { quietMs: 5_000, timeoutMs: 120_000 });
      const dlq = await readOutputKeys(env, topics.dlq, poison.size, { quietMs: 3_000, timeoutMs: 60_000 });
      expect(await a.kill('SIGTERM')).toBe(0);
      expect(violationCounts(out, good)).toEqual(NO_VIOLATIONS);
      expect(violationCounts(dlq, poison)).toEqual(NO_VIOLATIONS);
      expect(dlq).toHaveLength(poison.size);
    } finally {
      await env.close();
    }
  });
});
