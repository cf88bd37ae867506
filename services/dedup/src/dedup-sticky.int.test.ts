import { topicNames, type OutboundMessage } from '@cdp/kafka';
import { metricValue } from '@cdp/testkit';
import {
  createDedupTestEnv,
  envelope,
  NO_VIOLATIONS,
  readOutputKeys,
  startDedup,
  violationCounts,
  waitReady,
  type DedupProcess,
  type DedupTestEnv,
} from './testing/dedup-harness';

const PARTITIONS = 6;

describe('dedup sticky assignment (real broker, real processes)', () => {
  let env: DedupTestEnv;
  afterEach(() => env?.close());

  it('moves no partition between the members already there when a third one joins (no repair for them)', async () => {
    env = await createDedupTestEnv('sticky', PARTITIONS);
    const topics = topicNames(env.prefix);
    const expected = new Set<string>();
    let next = 0;
    const wave = (n: number): OutboundMessage[] =>
      Array.from({ length: n }, () => {
        const id = `s${next++}`;
        expected.add(`web:${id}`);
        return envelope('web', id, new Date(Date.UTC(2026, 0, 1) + next));
      });
    const start = async () => {
      const proc = await startDedup(env, { DEDUP_DATA_DIR: env.newDataDir() });
      await waitReady(proc);
      return proc;
    };
    const settle = async (n: number) => {
      // Every partition gets input, so each owner takes its partitions over (fence + repair).
      await env.producer.send(topics.ingest, wave(n));
      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 3_000, timeoutMs: 60_000 });
      expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
    };
    const repaired = async (p: DedupProcess) => metricValue(await p.metrics(), 'cdp_dedup_repaired_keys_total');

    const a = await start();
    await settle(600);
    const b = await start();
    await settle(600);
    const before = [await repaired(a), await repaired(b)];

    await start();
    await settle(600);
    // The newcomer's partitions come from the others; none moves from one old member to the
    // other (which would re-read that whole output partition into a store that never had it).
    expect([await repaired(a), await repaired(b)]).toEqual(before);
  }, 120_000);
});
