import { sleep } from '@cdp/testkit';
import type { BlockingQuery, Indexed, ReadOptions } from './client';
import { ConsulWatch } from './watch';

/** A blocking query that answers from a script and records what it was asked. */
function scripted(answers: Array<Indexed<string> | Error>): { query: BlockingQuery<string>; asked: ReadOptions[] } {
  const asked: ReadOptions[] = [];
  const query: BlockingQuery<string> = async (options) => {
    asked.push(options);
    const next = answers.shift();
    if (next === undefined) {
      // Out of script: block like Consul until the watch ends.
      return new Promise((_, reject) => options.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
    }
    if (next instanceof Error) throw next;
    return next;
  };
  return { query, asked };
}

describe('ConsulWatch', () => {
  it('passes each index back, emits only when it moves, and starts over when it goes back', async () => {
    const { query, asked } = scripted([
      { index: 5, value: 'a' },
      { index: 5, value: 'a' }, // wait passed, nothing changed
      { index: 9, value: 'b' },
      { index: 3, value: 'restored' }, // went backwards: start over from 0
      { index: 4, value: 'c' },
    ]);
    const watch = new ConsulWatch(query, { wait: '7s' });
    const changes: Array<[string, number]> = [];
    watch.on('change', (value, index) => changes.push([value, index]));
    await sleep(50);
    watch.end();
    expect(changes).toEqual([
      ['a', 5],
      ['b', 9],
      ['c', 4],
    ]);
    expect(asked.map((o) => o.index)).toEqual([0, 5, 5, 9, 0, 4]);
    expect(asked.every((o) => o.wait === '7s')).toBe(true);
    expect(asked.at(-1)!.signal!.aborted).toBe(true);
  });

  it('treats an index below 1 and failures as errors, retrying with a growing backoff', async () => {
    const { query, asked } = scripted([new Error('down'), { index: 0, value: 'x' }, new Error('down'), { index: 2, value: 'ok' }]);
    const watch = new ConsulWatch(query, { backoffFactorMs: 20, backoffMaxMs: 1_000 });
    const errors: string[] = [];
    watch.on('error', (error) => errors.push(String(error)));
    const changed = new Promise<number>((resolve) => watch.once('change', () => resolve(Date.now())));
    const started = Date.now();
    const at = await changed;
    watch.end();
    expect(errors).toEqual(['Error: down', expect.stringMatching(/index 0/), 'Error: down']);
    // 40 + 80 + 160 ms of backoff before the answer that counts.
    expect(at - started).toBeGreaterThanOrEqual(270);
    expect(asked).toHaveLength(5);
  });

  it('survives a change listener that throws, reporting it as an error', async () => {
    const { query } = scripted([
      { index: 1, value: 'a' },
      { index: 2, value: 'b' },
    ]);
    const watch = new ConsulWatch(query);
    const seen: string[] = [];
    const errors: unknown[] = [];
    watch.on('change', (value) => {
      seen.push(value);
      if (value === 'a') throw new Error('listener bug');
    });
    watch.on('error', (error) => errors.push(error));
    await sleep(50);
    watch.end();
    expect(seen).toEqual(['a', 'b']);
    expect(String(errors[0])).toBe('Error: listener bug');
  });

  it('caps the backoff and stops retrying once ended', async () => {
    const { query, asked } = scripted(Array.from({ length: 100 }, () => new Error('down')));
    const watch = new ConsulWatch(query, { backoffFactorMs: 10, backoffMaxMs: 30 });
    watch.on('error', () => undefined);
    await sleep(300);
    const calls = asked.length;
    // 20, 30, 30, ... ms: about ten tries in 300 ms, not the 4 of an uncapped doubling.
    expect(calls).toBeGreaterThanOrEqual(6);
    watch.end();
    await sleep(100);
    expect(asked.length).toBe(calls);
  });
});
