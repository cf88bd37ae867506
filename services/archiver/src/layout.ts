import { createHash } from 'node:crypto';

/** Which stream an archive object holds (DESIGN.md "Archive layout"). */
export type ArchiveKind = 'raw' | 'undelivered';

/** The records of one object share these: one source, one hour (of receivedAt), and for undelivered one destination. */
export interface ObjectGroup {
  kind: ArchiveKind;
  sourceId: string;
  /** Only for kind undelivered. */
  destinationId?: string;
  /** `yyyy-mm-ddThh` (UTC) of the records' receivedAt. */
  hour: string;
}

/** Where the records of one partition's flush start: names the object, so a re-flush after a crash replaces it. */
export interface ObjectOrigin {
  topic: string;
  partition: number;
  /** Offset of the group's first record in this flush. */
  firstOffset: string;
}

/** `yyyy-mm-ddThh` of an ISO timestamp, in UTC. */
export function hourOf(isoTimestamp: string): string {
  const time = Date.parse(isoTimestamp);
  if (Number.isNaN(time)) throw new Error(`not a timestamp: ${isoTimestamp}`);
  return new Date(time).toISOString().slice(0, 13);
}

/**
 * A short prefix from a hash of source and hour: S3 scales request rates per prefix, so a busy
 * source's hours land on different prefixes instead of one hot `raw/` prefix.
 */
export function spreadPrefix(sourceId: string, hour: string): string {
  return createHash('sha256').update(`${sourceId}/${hour}`).digest('hex').slice(0, 4);
}

function datePath(hour: string): string {
  const [day, hh] = hour.split('T');
  return `${day}/${hh}`;
}

/** `<spread>/raw/<source>/<yyyy-mm-dd>/<hh>/` or `<spread>/undelivered/<source>/<destination>/<yyyy-mm-dd>/<hh>/`. */
export function groupPrefix(group: ObjectGroup): string {
  const spread = spreadPrefix(group.sourceId, group.hour);
  if (group.kind === 'raw') return `${spread}/raw/${group.sourceId}/${datePath(group.hour)}/`;
  if (!group.destinationId) throw new Error('an undelivered group needs its destinationId');
  return `${spread}/undelivered/${group.sourceId}/${group.destinationId}/${datePath(group.hour)}/`;
}

function objectName(origin: ObjectOrigin): string {
  return `${origin.topic}-${origin.partition}-${origin.firstOffset}`;
}

export function objectKey(group: ObjectGroup, origin: ObjectOrigin): string {
  return `${groupPrefix(group)}${objectName(origin)}.jsonl.gz`;
}

/**
 * The manifest of one source and hour is the prefix `<spread>/manifests/<source>/<yyyy-mm-dd>/<hh>/`:
 * one small entry per object (raw and undelivered), named like it, so replay and deletion list
 * one short prefix instead of the bucket, and concurrent writers (partitions on other replicas)
 * never overwrite each other's entries.
 */
export function manifestPrefix(sourceId: string, hour: string): string {
  return `${spreadPrefix(sourceId, hour)}/manifests/${sourceId}/${datePath(hour)}/`;
}

export function manifestEntryKey(group: ObjectGroup, origin: ObjectOrigin): string {
  const destination = group.kind === 'undelivered' ? `${group.destinationId}-` : '';
  return `${manifestPrefix(group.sourceId, group.hour)}${group.kind}-${destination}${objectName(origin)}.json`;
}

/**
 * The hours a source has objects in: one small object `index/<source>/<yyyy-mm-ddThh>` per
 * source and hour, so deletion (which has no time range) lists one short prefix per source
 * instead of the bucket.
 */
export function hourIndexPrefix(sourceId: string): string {
  return `index/${sourceId}/`;
}

export function hourIndexKey(sourceId: string, hour: string): string {
  return `${hourIndexPrefix(sourceId)}${hour}`;
}
