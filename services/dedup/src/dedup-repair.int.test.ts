import fs from 'node:fs';
import { topicNames, type OutboundMessage } from '@cdp/kafka';
import { metricValue } from '@cdp/testkit';
import {
  createDedupTestEnv,
  NO_VIOLATIONS,
  produceBulk,
  readOutputKeys,
  sizedEnvelope,
  startDedup,
  violationCounts,
  waitReady,
  type DedupTestEnv,
} from './testing/dedup-harness';

const PARTITIONS = 4;
const EVENT_BYTES = 600;
/** ~7 MB over 4 partitions: each output partition's tail spans several fetches. */
const FIRST_EVENTS = 12_000;
const LATER_EVENTS = 2_000;

describe('dedup repair from cdp.deduped (real broker, real processes)', () => {
  let env: DedupTestEnv;
  afterEach(() => env?.close());

  it('repairs a multi-MB tail after volume loss, a partition never owned (scale-out), and partitions back after a rebalance', async () => {
    env = await createDedupTestEnv('repair', PARTITIONS);
    const topics = topicNames(env.prefix);
    const t0 = Date.UTC(2026, 0, 1);
    const expected = new Set<string>();
    let next = 0;
    /** `n` new events, plus copies of `copies` (client retries of events already published). */
    const wave = (n: number, copies: OutboundMessage[] = []): OutboundMessage[] => {
      const out = [...copies];
      for (let i = 0; i < n; i++, next++) {
        out.push(sizedEnvelope('web', `r${next}`, new Date(t0 + next), EVENT_BYTES));
        expected.add(`web:r${next}`);
      }
      return out;
    };
    const copiesOf = (events: OutboundMessage[], every: number) => events.filter((_, i) => i % every === 0);
    const exactlyOnce = async () => {
      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 3_000, timeoutMs: 60_000 });
      expect(violationCounts(out, expected)).toEqual(NO_VIOLATIONS);
      expect(out).toHaveLength(expected.size);
    };

    // 1. One process publishes a multi-MB output tail, then dies with its volume.
    const first = wave(FIRST_EVENTS);
    let a = await startDedup(env);
    await waitReady(a);
    await produceBulk(env, topics.ingest, first);
    await exactlyOnce();
    await a.kill('SIGKILL');
    fs.rmSync(env.dataDir, { recursive: true, force: true });

    // 2. Restarted on an empty volume: the whole tail is repaired, copies dropped, new events flow.
    a = await startDedup(env);
    await waitReady(a);
    const second = wave(LATER_EVENTS, copiesOf(first, 4));
    await produceBulk(env, topics.ingest, second);
    await exactlyOnce();
    // Each output record repaired once (the reader moves on), not re-read in a loop.
    expect(metricValue(await a.metrics(), 'cdp_dedup_repaired_keys_total')).toBe(FIRST_EVENTS);

    // 3. Scale-out: a new process with its own empty volume gets partitions it never owned.
    const b = await startDedup(env, { DEDUP_DATA_DIR: env.newDataDir() });
    await waitReady(b);
    const third = wave(LATER_EVENTS, copiesOf([...first, ...second], 3));
    await produceBulk(env, topics.ingest, third);
    await exactlyOnce();
    expect(metricValue(await b.metrics(), 'cdp_dedup_repaired_keys_total')).toBeGreaterThan(0);

    // 4. Scale-in: the partitions come back to the first process, whose stores miss what the
    //    second one published meanwhile (repaired from their checkpoints).
    expect(await b.kill('SIGTERM')).toBe(0);
    const fourth = wave(LATER_EVENTS, copiesOf(third, 2));
    await produceBulk(env, topics.ingest, fourth);
    await exactlyOnce();
  }, 240_000);
});
