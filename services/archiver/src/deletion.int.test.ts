import type { Envelope } from '@cdp/events';
import { TopicCollector } from '@cdp/kafka/testing';
import { freePort, metricValue, startServiceProcess, uniqueSuffix, waitServiceReady, type ServiceProcess } from '@cdp/testkit';
import type { RegulationStatus } from './deleter';
import { readManifest, readObjectLines } from './reader';
import { archiveRecord, startArchiverRig, type ArchiverRig } from './testing/rig';
import { ArchiveWriter, type ArchiveRecord } from './writer';

const HOURS = ['2026-11-20T14', '2026-11-20T15'];
const PER_OBJECT = 500;

describe('GDPR deletion in the archive (archiver process, real broker and S3Proxy)', () => {
  let rig: ArchiverRig;
  let statuses: TopicCollector<RegulationStatus>;
  let proc: ServiceProcess | undefined;
  const suffix = uniqueSuffix().replace(/[^A-Za-z0-9_-]/g, '');
  const sources = { a: `a${suffix}`, b: `b${suffix}`, other: `o${suffix}` };
  const regulationId = `reg-del-${suffix}`;

  beforeAll(async () => {
    rig = await startArchiverRig('deletion', {
      partitions: 2,
      sources: [
        { id: sources.a, name: 'a', spaceId: 'main' },
        { id: sources.b, name: 'b', spaceId: 'main' },
        { id: sources.other, name: 'o', spaceId: 'other' },
      ],
    });
    statuses = await new TopicCollector<RegulationStatus>(
      rig.kafka,
      rig.topics['regulation-status'],
      (m) => JSON.parse(m.value!.toString('utf8')) as RegulationStatus,
    ).start();
    proc = await startServiceProcess('archiver', {
      ...rig.archiverEnv(`deletion-${suffix}`, await freePort()),
    });
    await waitServiceReady(proc, 90_000);
  }, 120_000);

  afterAll(async () => {
    await proc?.stop('SIGKILL');
    await statuses?.stop();
    await rig?.close();
  });

  /** messageId → userId of every archived event of a source (raw and undelivered), and whether manifests match the objects. */
  async function archived(sourceId: string): Promise<{ events: Map<string, string>; manifestsMatch: boolean }> {
    const events = new Map<string, string>();
    let manifestsMatch = true;
    for (const hour of HOURS) {
      for (const entry of await readManifest(rig.s3, rig.bucket, sourceId, hour)) {
        const lines = await readObjectLines(rig.s3, rig.bucket, entry.key);
        if (lines.length !== entry.records) manifestsMatch = false;
        for (const line of lines) {
          const e = JSON.parse(line) as Envelope & { destinationId?: string };
          events.set(`${e.destinationId ?? 'raw'}:${e.messageId}`, String(e.message.userId));
        }
      }
    }
    return { events, manifestsMatch };
  }

  it("removes a deleted user's events from every object of the space's sources, keeps every other event, and reports the stage finished", async () => {
    const writer = new ArchiveWriter({ client: rig.s3, bucket: rig.bucket, partSizeBytes: 5 * 1024 * 1024 });
    let seq = 0;
    const record = (sourceId: string, hour: string, extra: Record<string, unknown> = {}): ArchiveRecord => {
      const messageId = `m${++seq}`;
      // Every 7th event is the deleted user's.
      const userId = seq % 7 === 0 ? 'gone-user' : `u${seq % 11}`;
      const receivedAt = `${hour}:${String(seq % 60).padStart(2, '0')}:00.000Z`;
      const envelope = {
        v: 1,
        sourceId,
        messageId,
        receivedAt,
        message: { type: 'track', event: 'Viewed', messageId, userId, timestamp: receivedAt },
        ...extra,
      } as Envelope;
      return archiveRecord(seq, envelope);
    };
    const undeliveredFields = {
      destinationId: 'dest1',
      subscriptionId: 's1',
      attempts: 4,
      firstAttemptAt: null,
      expiredAt: '2026-11-20T18:00:00.000Z',
      lastStatus: 500,
      lastError: 'boom',
      lastResponseExcerpt: null,
    };
    for (const sourceId of Object.values(sources)) {
      for (let partition = 0; partition < 2; partition++) {
        const records = HOURS.flatMap((hour) => Array.from({ length: PER_OBJECT }, () => record(sourceId, hour)));
        await writer.writeFlush(rig.topics.deduped, partition, records);
      }
      await writer.writeFlush(
        rig.topics.undelivered,
        0,
        Array.from({ length: 60 }, () => record(sourceId, HOURS[0], undeliveredFields)),
      );
    }
    const before = Object.fromEntries(await Promise.all(Object.entries(sources).map(async ([k, id]) => [k, (await archived(id)).events])));
    const gone = (events: Map<string, string>) => [...events.values()].filter((u) => u === 'gone-user').length;
    expect(gone(before.a)).toBeGreaterThan(100);
    expect(gone(before.other)).toBeGreaterThan(100);

    await rig.publishRegulation({ regulationId, type: 'DELETE_ONLY', userId: 'gone-user' });
    const finished = await statuses.until((all) => all.some((s) => s.regulationId === regulationId && s.state === 'FINISHED'), 90_000);
    expect(finished).toBe(true);
    expect(statuses.all.filter((s) => s.regulationId === regulationId).map((s) => `${s.stage}:${s.state}`)).toEqual([
      'archiver:RUNNING',
      'archiver:FINISHED',
    ]);

    for (const key of ['a', 'b', 'other'] as const) {
      const after = await archived(sources[key]);
      expect(after.manifestsMatch).toBe(true);
      const expected = new Map([...before[key]].filter(([, user]) => key === 'other' || user !== 'gone-user'));
      // The same events (by messageId, raw and undelivered), each once: the user's gone in its space only.
      expect({ source: key, size: after.events.size, gone: gone(after.events) }).toEqual({
        source: key,
        size: expected.size,
        gone: key === 'other' ? gone(before.other) : 0,
      });
      expect([...after.events.keys()].sort()).toEqual([...expected.keys()].sort());
    }
    const removed = gone(before.a) + gone(before.b);
    expect(metricValue(await proc!.metrics(), 'cdp_archiver_deleted_events_total')).toBe(removed);
    const detail = statuses.all.find((s) => s.regulationId === regulationId && s.state === 'FINISHED')!.detail;
    expect(detail).toMatch(new RegExp(`^${removed} events removed from \\d+ archive objects$`));
  }, 180_000);
});
