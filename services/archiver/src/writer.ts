import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { counter, histogram } from '@cdp/metrics';
import { hourIndexKey, manifestEntryKey, objectKey, type ObjectGroup, type ObjectOrigin } from './layout';

const gzip = promisify(gzipCallback);

/** One record to archive: its offset, its JSON line and the object group it belongs to. */
export interface ArchiveRecord {
  offset: string;
  /** The record's value, one JSON document without a newline. */
  line: string;
  group: ObjectGroup;
  receivedAt: string;
  /** The message's userId as sent (regulations are checked again at upload). */
  userId?: unknown;
}

/** A manifest entry: what replay and deletion need to know of an object without reading it. */
export interface ManifestEntry extends ObjectGroup, ObjectOrigin {
  key: string;
  lastOffset: string;
  records: number;
  /** Compressed size. */
  bytes: number;
  minReceivedAt: string;
  maxReceivedAt: string;
}

export interface ArchiveWriterOptions {
  client: S3Client;
  bucket: string;
  /** Objects above this size go up as a multipart upload in parts of this size (S3's minimum is 5 MiB). */
  partSizeBytes: number;
}

export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;

const objectsWritten = counter({
  name: 'cdp_archiver_objects_written_total',
  help: 'Archive objects uploaded',
  labelNames: ['kind'] as const,
});
const bytesWritten = counter({
  name: 'cdp_archiver_bytes_written_total',
  help: 'Compressed bytes of uploaded archive objects',
  labelNames: ['kind'] as const,
});
const recordsWritten = counter({
  name: 'cdp_archiver_records_written_total',
  help: 'Records in uploaded archive objects',
  labelNames: ['kind'] as const,
});
const uploadSeconds = histogram({
  name: 'cdp_archiver_upload_duration_seconds',
  help: 'Time to compress and upload one archive object with its manifest entry',
  labelNames: ['kind'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
});

function groupId(group: ObjectGroup): string {
  return `${group.kind}/${group.sourceId}/${group.destinationId ?? ''}/${group.hour}`;
}

/** Splits one partition's flush into objects: records of one group, in offset order. */
export function groupRecords(records: ArchiveRecord[]): ArchiveRecord[][] {
  const groups = new Map<string, ArchiveRecord[]>();
  for (const record of records) {
    const id = groupId(record.group);
    const members = groups.get(id);
    if (members) members.push(record);
    else groups.set(id, [record]);
  }
  return [...groups.values()];
}

/**
 * Writes gzip JSON-lines objects and their manifest entries. Each object is named after the
 * offset of its group's first record in the flush, so a flush repeated from the same committed
 * offset after a crash PUTs the same keys and S3 replaces the objects whole.
 */
export class ArchiveWriter {
  /** Hour index entries this process wrote (`hourIndexKey`): each is PUT once per process. */
  private readonly indexed = new Set<string>();

  constructor(private readonly options: ArchiveWriterOptions) {
    if (options.partSizeBytes < MIN_PART_SIZE_BYTES)
      throw new Error(`partSizeBytes must be at least ${MIN_PART_SIZE_BYTES} (S3's minimum part size)`);
  }

  /** Uploads the records of one partition's flush (in offset order); resolves once S3 acknowledged every object and manifest entry. */
  async writeFlush(topic: string, partition: number, records: ArchiveRecord[]): Promise<ManifestEntry[]> {
    const entries: ManifestEntry[] = [];
    for (const members of groupRecords(records)) entries.push(await this.writeObject(topic, partition, members));
    return entries;
  }

  private async writeObject(topic: string, partition: number, members: ArchiveRecord[]): Promise<ManifestEntry> {
    const started = process.hrtime.bigint();
    const group = members[0].group;
    const origin: ObjectOrigin = { topic, partition, firstOffset: members[0].offset };
    const body = await gzip(Buffer.from(`${members.map((r) => r.line).join('\n')}\n`, 'utf8'));
    const key = objectKey(group, origin);
    const upload = new Upload({
      client: this.options.client,
      params: { Bucket: this.options.bucket, Key: key, Body: body, ContentType: 'application/x-ndjson', ContentEncoding: 'gzip' },
      partSize: this.options.partSizeBytes,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
    let minReceivedAt = members[0].receivedAt;
    let maxReceivedAt = members[0].receivedAt;
    for (const { receivedAt } of members) {
      if (Date.parse(receivedAt) < Date.parse(minReceivedAt)) minReceivedAt = receivedAt;
      if (Date.parse(receivedAt) > Date.parse(maxReceivedAt)) maxReceivedAt = receivedAt;
    }
    const entry: ManifestEntry = {
      ...group,
      ...origin,
      key,
      lastOffset: members[members.length - 1].offset,
      records: members.length,
      bytes: body.length,
      minReceivedAt,
      maxReceivedAt,
    };
    await this.options.client.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: manifestEntryKey(group, origin),
        Body: JSON.stringify(entry),
        ContentType: 'application/json',
      }),
    );
    const indexKey = hourIndexKey(group.sourceId, group.hour);
    if (!this.indexed.has(indexKey)) {
      await this.options.client.send(new PutObjectCommand({ Bucket: this.options.bucket, Key: indexKey, Body: group.hour }));
      this.indexed.add(indexKey);
    }
    objectsWritten.labels(group.kind).inc();
    bytesWritten.labels(group.kind).inc(body.length);
    recordsWritten.labels(group.kind).inc(members.length);
    uploadSeconds.labels(group.kind).observe(Number(process.hrtime.bigint() - started) / 1e9);
    return entry;
  }
}
