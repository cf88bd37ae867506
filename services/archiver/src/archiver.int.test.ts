import { encodeEnvelope, type Envelope } from '@cdp/events';
import {
  freePort,
  metricValue,
  sleep,
  startServiceProcess,
  uniqueSuffix,
  waitFor,
  waitServiceReady,
  type ServiceProcess,
} from '@cdp/testkit';
import { readManifest, readObjectLines } from './reader';
import { startArchiverRig, type ArchiverRig } from './testing/rig';

const PARTITIONS = 4;
const RAW = 24_000;
const UNDELIVERED = 1_200;
const PADDING = 'x'.repeat(1_000); // ~1.2 KB per record: ~30 MB of raw records
const HOURS = ['2026-12-04T10', '2026-12-04T11'];

describe('archiver process on the real broker and S3Proxy', () => {
  let rig: ArchiverRig;
  const source = `web${uniqueSuffix().replace(/[^A-Za-z0-9_-]/g, '')}`;
  const groupId = `archiver-${uniqueSuffix()}`;
  const procs: ServiceProcess[] = [];

  beforeAll(async () => {
    rig = await startArchiverRig('archiver', { partitions: PARTITIONS, sources: [{ id: source, name: 'web', spaceId: 'main' }] });
  });

  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await rig?.close();
  });

  const start = async (env: Record<string, string> = {}) => {
    const proc = await startServiceProcess('archiver', {
      ...rig.archiverEnv(groupId, await freePort()),
      ARCHIVER_FLUSH_BYTES: String(1024 * 1024),
      ARCHIVER_FLUSH_AGE_MS: '1500',
      ARCHIVER_PART_SIZE_BYTES: String(5 * 1024 * 1024),
      ...env,
    });
    procs.push(proc);
    return proc;
  };

  let seq = 0;
  function envelope(
    extra: Partial<Envelope> & Record<string, unknown> = {},
    userId = `u${seq % 50}`,
    hour = HOURS[(seq + 1) % 2],
  ): { key: string; value: string } {
    const messageId = `m${++seq}`;
    const receivedAt = `${hour}:${String(seq % 60).padStart(2, '0')}:00.000Z`;
    const message = {
      type: 'track',
      event: 'Viewed',
      messageId,
      userId,
      timestamp: receivedAt,
      properties: { padding: PADDING },
    } as Envelope['message'];
    return { key: `${source}:${messageId}`, value: encodeEnvelope({ v: 1, sourceId: source, messageId, receivedAt, message, ...extra }) };
  }

  async function committedEverything(): Promise<boolean> {
    const admin = rig.kafka.admin();
    await admin.connect();
    try {
      for (const topic of [rig.topics.deduped, rig.topics.undelivered]) {
        const ends = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        for (const end of ends) {
          const c = committed.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1';
          if (BigInt(c) < BigInt(end.high)) return false;
        }
      }
      return true;
    } finally {
      await admin.disconnect();
    }
  }

  it('archives every record of tens of MB exactly once across SIGKILLs mid-flush, without replays and regulated users', async () => {
    await rig.publishRegulation({ regulationId: 'r1', type: 'SUPPRESS_WITH_DELETE', userId: 'suppressed-user' });
    const expected = new Set<string>();
    const raw = Array.from({ length: RAW }, () => envelope());
    for (const r of raw) expected.add(JSON.parse(r.value).messageId);
    const replayed = Array.from({ length: 300 }, () => envelope({ replay: { id: 'rp1', destinations: ['d2'], force: false } }));
    const regulated = Array.from({ length: 300 }, () => envelope({}, 'suppressed-user'));
    const undelivered = Array.from({ length: UNDELIVERED }, () =>
      envelope({
        destinationId: `dest${seq % 3}`,
        subscriptionId: 's1',
        attempts: 3,
        firstAttemptAt: null,
        expiredAt: new Date().toISOString(),
        lastStatus: 500,
        lastError: 'boom',
        lastResponseExcerpt: null,
      }),
    );
    for (const u of undelivered) expected.add(`undelivered:${JSON.parse(u.value).messageId}`);
    await rig.producer.send(rig.topics.deduped, [...raw.slice(0, RAW / 2), ...replayed, ...regulated]);
    await rig.producer.send(rig.topics.undelivered, undelivered);

    // SIGKILL the archiver at random points while it reads and flushes, then let one run finish.
    let proc = await start();
    await waitServiceReady(proc);
    await rig.producer.send(rig.topics.deduped, raw.slice(RAW / 2));
    const kills = 10;
    for (let i = 0; i < kills; i++) {
      await sleep(1_500 + Math.floor(Math.random() * 2_500));
      await proc.stop('SIGKILL');
      proc = await start();
      await waitServiceReady(proc, 90_000);
    }
    await waitFor(committedEverything, 180_000, 1_000);

    const seen = new Map<string, number>();
    let objects = 0;
    for (const hour of HOURS) {
      for (const entry of await readManifest(rig.s3, rig.bucket, source, hour)) {
        objects++;
        const lines = await readObjectLines(rig.s3, rig.bucket, entry.key);
        expect(lines).toHaveLength(entry.records);
        for (const line of lines) {
          const id = `${entry.kind === 'undelivered' ? 'undelivered:' : ''}${JSON.parse(line).messageId}`;
          seen.set(id, (seen.get(id) ?? 0) + 1);
        }
      }
    }
    const twice = [...seen].filter(([, n]) => n > 1).length;
    const missing = [...expected].filter((id) => !seen.has(id)).length;
    const unexpected = [...seen.keys()].filter((id) => !expected.has(id)).length; // replayed or regulated ones
    expect({ twice, missing, unexpected }).toEqual({ twice: 0, missing: 0, unexpected: 0 });
    expect(seen.size).toBe(RAW + UNDELIVERED);
    expect(objects).toBeGreaterThan(PARTITIONS * HOURS.length);
  }, 420_000);

  it('SIGTERM uploads and commits what it read before it exits, without waiting for the flush age', async () => {
    const hour = '2026-12-04T12';
    for (const p of procs) await p.stop('SIGKILL'); // the group's only member is the one started below
    const records = Array.from({ length: 2_000 }, () => envelope({}, undefined, hour));
    await rig.producer.send(rig.topics.deduped, records);
    // Neither the size (64 MiB) nor the age (10 min) flushes these: only the shutdown does.
    const proc = await start({ ARCHIVER_FLUSH_BYTES: String(64 * 1024 * 1024), ARCHIVER_FLUSH_AGE_MS: '600000' });
    await waitServiceReady(proc);
    const bytes = records.reduce((n, r) => n + Buffer.byteLength(r.value) + 1, 0);
    await waitFor(async () => metricValue(await proc.metrics(), 'cdp_archiver_buffered_bytes') >= bytes, 60_000, 200);
    expect(await committedEverything()).toBe(false);
    expect(await proc.stop('SIGTERM')).toBe(0);
    // Nothing runs any more: what is committed now was committed by the shutdown (a transaction's
    // offsets become visible to OffsetFetch a moment after its commit returned).
    await waitFor(committedEverything, 15_000, 250);
    const ids: string[] = [];
    for (const entry of await readManifest(rig.s3, rig.bucket, source, hour))
      for (const line of await readObjectLines(rig.s3, rig.bucket, entry.key)) ids.push(JSON.parse(line).messageId);
    expect(ids.sort()).toEqual(records.map((r) => JSON.parse(r.value).messageId).sort());
  }, 120_000);
});
