import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import type { Kafka } from 'kafkajs';
import { encodeEnvelope, type Envelope } from '@cdp/events';
import { BatchingProducer, createKafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics, TopicCollector } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  freePort,
  localS3ClientConfig,
  metricValue,
  requireEnv,
  startServiceProcess,
  testTopicPrefix,
  uniqueSuffix,
  waitServiceReady,
  type ServiceProcess,
} from '@cdp/testkit';
import type { RegulationStatus } from './deleter';
import { hourOf } from './layout';
import { readManifest, readObjectLines } from './reader';
import { archiverTestEnv } from './testing/env';
import { ArchiveWriter, type ArchiveRecord } from './writer';

const HOURS = ['2026-11-20T14', '2026-11-20T15'];
const PER_OBJECT = 500;

describe('GDPR deletion in the archive (archiver process, real broker and S3Proxy)', () => {
  let kafka: Kafka;
  let topics: TopicNames;
  let producer: BatchingProducer;
  let s3: S3Client;
  let dir: string;
  let statuses: TopicCollector<RegulationStatus>;
  let proc: ServiceProcess | undefined;
  const suffix = uniqueSuffix().replace(/[^A-Za-z0-9_-]/g, '');
  const sources = { a: `a${suffix}`, b: `b${suffix}`, other: `o${suffix}` };
  const bucket = requireEnv('S3_BUCKET');
  const regulationId = `reg-del-${suffix}`;

  beforeAll(async () => {
    const logger = createLogger({ name: 'deletion-test', level: 'warn' });
    kafka = createKafka({ brokers: requireEnv('KAFKA_BROKERS').split(','), clientId: 'deletion-test', logger });
    const topicPrefix = testTopicPrefix('deletion');
    topics = await createTestTopics(kafka, topicPrefix, { partitions: 2 });
    producer = new BatchingProducer(kafka, { logger });
    await producer.connect();
    s3 = new S3Client(localS3ClientConfig(requireEnv('S3_ENDPOINT')));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deletion-test-'));
    fs.writeFileSync(
      path.join(dir, 'workspace.json'),
      JSON.stringify({
        spaces: [
          { id: 'main', name: 'Main' },
          { id: 'other', name: 'Other' },
        ],
        sources: [
          { id: sources.a, name: 'a', spaceId: 'main', writeKeys: [`wk_${sources.a}`] },
          { id: sources.b, name: 'b', spaceId: 'main', writeKeys: [`wk_${sources.b}`] },
          { id: sources.other, name: 'o', spaceId: 'other', writeKeys: [`wk_${sources.other}`] },
        ],
      }),
    );
    statuses = await new TopicCollector<RegulationStatus>(
      kafka,
      topics['regulation-status'],
      (m) => JSON.parse(m.value!.toString('utf8')) as RegulationStatus,
    ).start();
    proc = await startServiceProcess('archiver', {
      ...archiverTestEnv({
        topicPrefix,
        workspaceFile: path.join(dir, 'workspace.json'),
        groupId: `deletion-${suffix}`,
        adminPort: await freePort(),
      }),
    });
    await waitServiceReady(proc, 90_000);
  }, 120_000);

  afterAll(async () => {
    await proc?.stop('SIGKILL');
    await statuses?.stop();
    await producer?.disconnect();
    s3?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** messageId → userId of every archived event of a source (raw and undelivered), and whether manifests match the objects. */
  async function archived(sourceId: string): Promise<{ events: Map<string, string>; manifestsMatch: boolean }> {
    const events = new Map<string, string>();
    let manifestsMatch = true;
    for (const hour of HOURS) {
      for (const entry of await readManifest(s3, bucket, sourceId, hour)) {
        const lines = await readObjectLines(s3, bucket, entry.key);
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
    const writer = new ArchiveWriter({ client: s3, bucket, partSizeBytes: 5 * 1024 * 1024 });
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
      const kind = 'destinationId' in extra ? 'undelivered' : 'raw';
      return {
        offset: String(seq),
        line: encodeEnvelope(envelope),
        receivedAt,
        userId,
        group: { kind, sourceId, destinationId: extra.destinationId as string | undefined, hour: hourOf(receivedAt) },
      };
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
        await writer.writeFlush(topics.deduped, partition, records);
      }
      await writer.writeFlush(
        topics.undelivered,
        0,
        Array.from({ length: 60 }, () => record(sourceId, HOURS[0], undeliveredFields)),
      );
    }
    const before = Object.fromEntries(await Promise.all(Object.entries(sources).map(async ([k, id]) => [k, (await archived(id)).events])));
    const gone = (events: Map<string, string>) => [...events.values()].filter((u) => u === 'gone-user').length;
    expect(gone(before.a)).toBeGreaterThan(100);
    expect(gone(before.other)).toBeGreaterThan(100);

    await producer.send(topics.regulations, [
      {
        key: 'main:gone-user',
        value: JSON.stringify({
          regulationId,
          type: 'DELETE_ONLY',
          userId: 'gone-user',
          spaceId: 'main',
          requestedAt: new Date().toISOString(),
        }),
      },
    ]);
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
