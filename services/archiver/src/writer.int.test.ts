import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { localS3ClientConfig, requireEnv, uniqueSuffix } from '@cdp/testkit';
import { hourOf, objectKey, type ObjectGroup } from './layout';
import { readManifest, readObjectLines } from './reader';
import { ArchiveWriter, MIN_PART_SIZE_BYTES, type ArchiveRecord } from './writer';

describe('ArchiveWriter on S3Proxy', () => {
  let client: S3Client;
  let writer: ArchiveWriter;
  const bucket = requireEnv('S3_BUCKET');

  beforeAll(() => {
    client = new S3Client(localS3ClientConfig(requireEnv('S3_ENDPOINT')));
    writer = new ArchiveWriter({ client, bucket, partSizeBytes: MIN_PART_SIZE_BYTES });
  });
  afterAll(() => client.destroy());

  const record = (offset: number, group: ObjectGroup, receivedAt: string, payload = ''): ArchiveRecord => ({
    offset: String(offset),
    line: JSON.stringify({ messageId: `m${offset}`, sourceId: group.sourceId, receivedAt, payload }),
    group,
    receivedAt,
  });

  it('writes one gzip JSON-lines object per source, destination and hour, named by its first offset, and lists them in the manifest', async () => {
    const source = `src${uniqueSuffix()}`;
    const at = (minute: number, hour = 10) => `2026-12-04T${hour}:${String(minute).padStart(2, '0')}:00.000Z`;
    const raw10: ObjectGroup = { kind: 'raw', sourceId: source, hour: '2026-12-04T10' };
    const raw11: ObjectGroup = { kind: 'raw', sourceId: source, hour: '2026-12-04T11' };
    const undelivered10: ObjectGroup = { kind: 'undelivered', sourceId: source, destinationId: 'dest1', hour: '2026-12-04T10' };
    const records = [
      record(100, raw10, at(1)),
      record(101, raw11, at(2, 11)),
      record(102, raw10, at(59)),
      record(103, undelivered10, at(30)),
    ];

    const entries = await writer.writeFlush('cdp.deduped', 4, records);

    expect(entries.map((e) => [e.key, e.records, e.firstOffset, e.lastOffset])).toEqual([
      [objectKey(raw10, { topic: 'cdp.deduped', partition: 4, firstOffset: '100' }), 2, '100', '102'],
      [objectKey(raw11, { topic: 'cdp.deduped', partition: 4, firstOffset: '101' }), 1, '101', '101'],
      [objectKey(undelivered10, { topic: 'cdp.deduped', partition: 4, firstOffset: '103' }), 1, '103', '103'],
    ]);
    expect(entries[0]).toMatchObject({ minReceivedAt: at(1), maxReceivedAt: at(59) });
    expect((await readObjectLines(client, bucket, entries[0].key)).map((l) => JSON.parse(l).messageId)).toEqual(['m100', 'm102']);

    const manifest = await readManifest(client, bucket, source, hourOf(at(0)));
    expect(manifest.map((e) => e.key).sort()).toEqual([entries[0].key, entries[2].key].sort());
    expect(await readManifest(client, bucket, source, '2026-12-04T11')).toEqual([entries[1]]);
  });

  it('replaces the object and its manifest entry when a flush from the same first offset is written again', async () => {
    const source = `src${uniqueSuffix()}`;
    const group: ObjectGroup = { kind: 'raw', sourceId: source, hour: '2026-12-04T10' };
    const receivedAt = '2026-12-04T10:00:00.000Z';
    await writer.writeFlush('cdp.deduped', 0, [record(7, group, receivedAt), record(8, group, receivedAt), record(9, group, receivedAt)]);
    // The re-flush after a crash ended earlier (an age flush): offsets 7-8; 9 goes into the next object.
    const [again] = await writer.writeFlush('cdp.deduped', 0, [record(7, group, receivedAt), record(8, group, receivedAt)]);

    expect((await readObjectLines(client, bucket, again.key)).map((l) => JSON.parse(l).messageId)).toEqual(['m7', 'm8']);
    expect(await readManifest(client, bucket, source, '2026-12-04T10')).toEqual([again]);
  });

  it('uploads an object larger than the part size as a multipart upload', async () => {
    const source = `src${uniqueSuffix()}`;
    const group: ObjectGroup = { kind: 'raw', sourceId: source, hour: '2026-12-04T10' };
    const receivedAt = '2026-12-04T10:00:00.000Z';
    // ~12 MB of base64 noise compresses to ~9 MB: two parts of 5 MiB.
    const records = Array.from({ length: 1_200 }, (_, i) => record(i, group, receivedAt, randomBytes(7_500).toString('base64')));

    const [entry] = await writer.writeFlush('cdp.deduped', 1, records);

    expect(entry.bytes).toBeGreaterThan(MIN_PART_SIZE_BYTES);
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: entry.key }));
    expect(head.ETag).toMatch(/-2"?$/); // a multipart object's ETag ends with its part count
    expect(head.ContentLength).toBe(entry.bytes);
    const lines = await readObjectLines(client, bucket, entry.key);
    expect(lines).toHaveLength(1_200);
    expect(lines[1_199]).toBe(records[1_199].line);
  });
});
