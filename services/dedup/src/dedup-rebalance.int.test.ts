import { topicNames } from '@cdp/kafka';
import {
  createDedupTestEnv,
  exactlyOnceViolations,
  feed,
  makeStreamWithDuplicates,
  readOutputKeys,
  startDedup,
  waitReady,
} from './testing/dedup-harness';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
      const out = await readOutputKeys(env, topics.deduped, expected.size, 5_000, 120_000);
      expect(await a.kill('SIGTERM')).toBe(0);
      const v = exactlyOnceViolations(out, expected);
      expect({ missing: v.missing.length, repeated: v.repeated.length, unexpected: v.unexpected.length }).toEqual({ missing: 0, repeated: 0, unexpected: 0 });
      expect(out).toHaveLength(expected.size);
    } finally {
      await env.close();
    }
  });
});
