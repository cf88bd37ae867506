import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { recordBytes, RECORD_BATCH_OVERHEAD_BYTES } from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { ParkedRecords } from './parked';
import { Publisher, type ClusterSender } from './publisher';
import { Spool, SpoolFullError, type SpoolRecord } from './spool';

const logger = createLogger({ name: 'test', level: 'silent' });

/** Kafka's refusal of a record, as kafkajs throws it. */
const tooLarge = () =>
  Object.assign(new Error('The request included a message larger than the max message size the server will accept'), {
    type: 'MESSAGE_TOO_LARGE',
  });

/** An in-memory cluster whose availability the test switches. */
class FakeCluster implements ClusterSender {
  up = true;
  hang = false;
  readonly received: string[] = [];
  /** Each send's messages, as sent. */
  readonly sends: { key: string; value: string }[][] = [];
  /** Topic size limit (max.message.bytes); a send with a record batch over it is refused. */
  limit: number | undefined;
  limitReadable = true;
  isConnected = true;
  async send(_topic: string, messages: { key: string; value: string }[]): Promise<void> {
    if (this.hang) return new Promise(() => undefined);
    if (!this.up) throw new Error('broker down');
    this.sends.push(messages);
    if (this.limit !== undefined && messages.reduce((n, m) => n + recordBytes(m), RECORD_BATCH_OVERHEAD_BYTES) > this.limit)
      throw tooLarge();
    this.received.push(...messages.map((m) => m.key));
  }
  async maxMessageBytes(): Promise<number> {
    if (this.limit === undefined || !this.limitReadable) throw new Error('describeConfigs not allowed');
    return this.limit;
  }
  async probe(): Promise<void> {
    if (!this.up) throw new Error('broker down');
  }
  async ensureConnected(): Promise<void> {}
}

const recs = (prefix: string, n: number): SpoolRecord[] =>
  Array.from({ length: n }, (_, i) => ({ key: `web:${prefix}${i}`, value: `{"i":${i}}` }));
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tapi-spool-'));
const waitFor = async (cond: () => boolean, ms = 10_000) => {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

function make(
  spool: Spool,
  primary: FakeCluster,
  secondary?: FakeCluster,
  extra: Partial<ConstructorParameters<typeof Publisher>[0]> = {},
) {
  return new Publisher({
    topic: 't',
    primary,
    secondary,
    spool,
    parked: new ParkedRecords(spool.dir, logger),
    logger,
    publishTimeoutMs: 200,
    probeIntervalMs: 50,
    failoverErrorThreshold: 2,
    failoverLatencyMs: 10_000,
    failbackProbeIntervalMs: 30,
    drainBatchMessages: 7,
    ...extra,
  });
}

describe('Publisher', () => {
  let dir: string;
  let spool: Spool;
  beforeEach(async () => {
    dir = tmp();
    spool = await Spool.open({ dir, maxBytes: 10_000, minFreeBytes: 1, logger });
  });
  afterEach(async () => {
    await spool.close().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('publishes to the primary, spools when it is down or hangs, and drains in order after', async () => {
    const primary = new FakeCluster();
    const p = make(spool, primary);
    expect(await p.publish(recs('a', 2))).toBe('primary');
    primary.up = false;
    expect(await p.publish(recs('b', 3))).toBe('spool');
    primary.up = true;
    primary.hang = true;
    // Spool not empty: later events queue behind it to keep order.
    expect(await p.publish(recs('c', 2))).toBe('spool');
    expect(spool.depth).toBe(5);
    primary.hang = false;
    p.start();
    await waitFor(() => spool.depth === 0);
    await p.stop();
    expect(primary.received).toEqual(['web:a0', 'web:a1', 'web:b0', 'web:b1', 'web:b2', 'web:c0', 'web:c1']);
    expect(await p.publish(recs('d', 1))).toBe('primary');
  });

  it('times out a hanging cluster and answers from the spool', async () => {
    const primary = new FakeCluster();
    primary.hang = true;
    const p = make(spool, primary);
    expect(await p.publish(recs('a', 1))).toBe('spool');
  });

  it('keeps spooled events across a reopen (restart) and drops those suppressed since', async () => {
    const primary = new FakeCluster();
    primary.up = false;
    const p = make(spool, primary);
    await p.publish([
      { key: 'web:x', value: '1', space: 'main', user: 'bad' },
      { key: 'web:y', value: '2', space: 'main', user: 'ok' },
    ]);
    await spool.close();
    spool = await Spool.open({ dir, maxBytes: 10_000, minFreeBytes: 1, logger });
    expect(spool.depth).toBe(2);
    primary.up = true;
    const p2 = make(spool, primary, undefined, { keepOnDrain: (r) => r.user !== 'bad' });
    expect(await p2.drainAll(5_000)).toBe(true);
    expect(primary.received).toEqual(['web:y']);
  });

  it('refuses with SpoolFullError when the spool would pass its size', async () => {
    const primary = new FakeCluster();
    primary.up = false;
    const p = make(spool, primary);
    const big = [{ key: 'web:big', value: 'x'.repeat(6_000) }];
    await p.publish(big);
    expect(spool.isNearFull).toBe(false);
    await expect(p.publish(big)).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.depth).toBe(1);
  });

  it('fails over to the secondary after repeated errors, back when the primary recovers, and obeys force', async () => {
    const primary = new FakeCluster();
    const secondary = new FakeCluster();
    const p = make(spool, primary, secondary);
    p.start();
    try {
      primary.up = false;
      expect(await p.publish(recs('a', 1))).toBe('secondary');
      await new Promise((r) => setTimeout(r, 60));
      expect(await p.publish(recs('b', 1))).toBe('secondary');
      expect(p.activeCluster).toBe('secondary');
      expect(await p.publish(recs('c', 1))).toBe('secondary');
      primary.up = true;
      await waitFor(() => p.activeCluster === 'primary');
      expect(await p.publish(recs('d', 1))).toBe('primary');
      p.setForce('secondary');
      expect(await p.publish(recs('e', 1))).toBe('secondary');
      secondary.up = false;
      // Forced: the primary is not used even though it is up; the spool takes it.
      expect(await p.publish(recs('f', 1))).toBe('spool');
      p.setForce('auto');
      secondary.up = true;
      await waitFor(() => spool.depth === 0);
    } finally {
      await p.stop();
    }
    expect(secondary.received).toEqual(expect.arrayContaining(['web:a0', 'web:b0', 'web:c0', 'web:e0']));
    expect([...primary.received, ...secondary.received]).toContain('web:f0');
  });

  it('fails over when the primary is slow (p90 over the latency threshold) and obeys force primary', async () => {
    const primary = new FakeCluster();
    const secondary = new FakeCluster();
    const slow = primary.send.bind(primary);
    primary.send = async (topic, messages) => {
      await new Promise((r) => setTimeout(r, 15));
      return slow(topic, messages);
    };
    const p = make(spool, primary, secondary, { failoverLatencyMs: 5 });
    for (let i = 0; i < 20; i++) expect(await p.publish(recs(`s${i}-`, 1))).toBe('primary');
    expect(p.activeCluster).toBe('secondary');
    expect(await p.publish(recs('t', 1))).toBe('secondary');
    p.setForce('primary');
    expect(p.activeCluster).toBe('primary');
    expect(await p.publish(recs('u', 1))).toBe('primary');
  });

  it('sends everything to the spool while kafka is not allowed (suppression not rebuilt)', async () => {
    const primary = new FakeCluster();
    let allowed = false;
    const p = make(spool, primary, undefined, { kafkaAllowed: () => allowed });
    expect(await p.publish(recs('a', 2))).toBe('spool');
    expect(await p.drainOnce()).toBe(0);
    allowed = true;
    expect(await p.drainOnce()).toBe(2);
    expect(primary.received).toEqual(['web:a0', 'web:a1']);
  });

  describe('records Kafka refuses', () => {
    const sized = (prefix: string, n: number, valueBytes: number): SpoolRecord[] =>
      Array.from({ length: n }, (_, i) => ({ key: `web:${prefix}${i}`, value: 'v'.repeat(valueBytes) }));

    it('drains in sends split under the topic limit, in order', async () => {
      const primary = new FakeCluster();
      primary.up = false;
      const p = make(spool, primary, undefined, { drainBatchMessages: 100 });
      for (let i = 0; i < 4; i++) await p.publish(sized(`r${i}-`, 5, 100));
      primary.up = true;
      primary.limit = 1_000;
      expect(await p.drainAll(5_000)).toBe(true);
      expect(primary.received).toEqual([0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3, 4].map((j) => `web:r${i}-${j}`)));
      expect(primary.sends.length).toBeGreaterThan(2);
      for (const send of primary.sends)
        expect(send.reduce((n, m) => n + recordBytes(m), RECORD_BATCH_OVERHEAD_BYTES)).toBeLessThanOrEqual(1_000);
    });

    it('parks a refused record and delivers the others in order, without counting a cluster failure', async () => {
      const primary = new FakeCluster();
      const secondary = new FakeCluster();
      let allowed = false;
      const p = make(spool, primary, secondary, { drainBatchMessages: 100, failoverErrorThreshold: 1, kafkaAllowed: () => allowed });
      await p.publish(sized('a', 3, 10));
      await p.publish([{ key: 'web:huge', value: 'h'.repeat(2_000), space: 'main', user: 'u' }]);
      await p.publish(sized('b', 3, 10));
      expect(spool.depth).toBe(7);
      // The limit cannot be read (describeConfigs refused): Kafka's answer decides.
      primary.limit = 1_000;
      primary.limitReadable = false;
      allowed = true;
      expect(await p.drainAll(5_000)).toBe(true);
      expect(primary.received).toEqual(['web:a0', 'web:a1', 'web:a2', 'web:b0', 'web:b1', 'web:b2']);
      expect(primary.sends.length).toBeGreaterThan(1); // the refused send, then its halves
      expect(secondary.sends).toEqual([]);
      expect(p.activeCluster).toBe('primary');
      expect(p.describe()).not.toContain('failures');
      const parked = new ParkedRecords(dir, logger).list();
      expect(parked.map((r) => [r.record.key, r.record.user, r.reason])).toEqual([['web:huge', 'u', 'MESSAGE_TOO_LARGE']]);
      expect(spool.depth).toBe(0);
      expect(await p.publish(sized('c', 1, 10))).toBe('primary');
    });

    it('spools a live request Kafka refuses (no failover) and one over the known limit without sending it', async () => {
      const primary = new FakeCluster();
      const secondary = new FakeCluster();
      const p = make(spool, primary, secondary, { failoverErrorThreshold: 1 });
      primary.limit = 1_000;
      expect(await p.publish([{ key: 'web:big', value: 'x'.repeat(2_000) }])).toBe('spool');
      expect(p.activeCluster).toBe('primary');
      expect(secondary.sends).toEqual([]);
      expect(await p.drainAll(5_000)).toBe(true); // learns the limit, parks the record
      const sendsBefore = primary.sends.length;
      expect(await p.publish([{ key: 'web:big2', value: 'x'.repeat(2_000) }])).toBe('spool');
      expect(primary.sends.length).toBe(sendsBefore);
      expect(p.activeCluster).toBe('primary');
    });
  });
});
