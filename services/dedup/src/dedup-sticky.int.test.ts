import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { topicNames, type OutboundMessage } from '@cdp/kafka';
import { metricValue } from '@cdp/testkit';
import { createDedupTestEnv, envelope, exactlyOnceViolations, readOutputKeys, startDedup, waitReady, type DedupProcess, type DedupTestEnv } from './testing/dedup-harness';

const PARTITIONS = 6;

describe('dedup sticky assignment (real broker, real processes)', () => {
  let env: DedupTestEnv;
  const procs: DedupProcess[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    await env?.close();
  });

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
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dedup-sticky-'));
      dirs.push(dir);
      const proc = await startDedup(env, { DEDUP_DATA_DIR: dir });
      procs.push(proc);
      await waitReady(proc);
      return proc;
    };
    const settle = async (n: number) => {
      // Every partition gets input, so each owner takes its partitions over (fence + repair).
      await env.producer.send(topics.ingest, wave(n));
      const out = await readOutputKeys(env, topics.deduped, expected.size, { quietMs: 3_000, timeoutMs: 60_000 });
      const v = exactlyOnceViolations(out, expected);
      expect({ missing: v.missing.length, repeated: v.repeated.length, unexpected: v.unexpected.length }).toEqual({ missing: 0, repeated: 0, unexpected: 0 });
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
