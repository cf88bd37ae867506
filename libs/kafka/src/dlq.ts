// The records of cdp.dlq as cdp-dlq reads them: where each came from, what refused it, its
// original key, value and headers, and the markers that say it was re-sent or discarded.
import type { IHeaders, KafkaMessage, Message } from 'kafkajs';
import { decodeHeaders, HEADER_ERROR, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION, HEADER_SOURCE_TOPIC, HEADER_STAGE } from './headers';

/** Headers the DLQ adds to a record; a re-sent record goes back without them. */
export const DLQ_HEADERS: readonly string[] = [
  HEADER_STAGE,
  HEADER_ERROR,
  HEADER_SOURCE_TOPIC,
  HEADER_SOURCE_PARTITION,
  HEADER_SOURCE_OFFSET,
];

export interface DlqRecord {
  partition: number;
  offset: bigint;
  /** When it was dead-lettered (the DLQ record's timestamp), ms since the epoch. */
  timestamp: number;
  stage: string;
  error: string;
  /** Where the record was read when it was refused; absent when the headers do not say. */
  source: { topic: string; partition: number | undefined; offset: string | undefined } | undefined;
  key: Buffer | null;
  value: Buffer | null;
  /** The record's original headers, raw, without the DLQ ones. */
  headers: IHeaders;
}

export function positionOf(record: { partition: number; offset: bigint }): string {
  return `${record.partition}:${record.offset}`;
}

export function parseDlqRecord(partition: number, message: KafkaMessage): DlqRecord {
  const dlq = decodeHeaders(message.headers);
  const original: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (!DLQ_HEADERS.includes(name) && value !== undefined) original[name] = value;
  }
  const sourcePartition = Number(dlq[HEADER_SOURCE_PARTITION]);
  return {
    partition,
    offset: BigInt(message.offset),
    timestamp: Number(message.timestamp),
    stage: dlq[HEADER_STAGE] ?? '(none)',
    error: dlq[HEADER_ERROR] ?? '',
    source: dlq[HEADER_SOURCE_TOPIC]
      ? {
          topic: dlq[HEADER_SOURCE_TOPIC],
          partition: Number.isSafeInteger(sourcePartition) && sourcePartition >= 0 ? sourcePartition : undefined,
          offset: dlq[HEADER_SOURCE_OFFSET],
        }
      : undefined,
    key: message.key ?? null,
    value: message.value ?? null,
    headers: original,
  };
}

/** DLQ offsets `from..to` (inclusive) of one partition, as `--offsets 3:100-250` gives them. */
export interface OffsetSpan {
  partition: number;
  from: bigint;
  to: bigint;
}

export interface DlqFilter {
  stages?: ReadonlySet<string>;
  /** Original topics. */
  topics?: ReadonlySet<string>;
  /** Dead-lettered at or after, ms since the epoch. */
  since?: number;
  /** Dead-lettered before, ms since the epoch. */
  until?: number;
  offsets?: readonly OffsetSpan[];
}

export function selects(filter: DlqFilter, record: DlqRecord): boolean {
  if (filter.stages && !filter.stages.has(record.stage)) return false;
  if (filter.topics && !(record.source && filter.topics.has(record.source.topic))) return false;
  if (filter.since !== undefined && record.timestamp < filter.since) return false;
  if (filter.until !== undefined && record.timestamp >= filter.until) return false;
  if (filter.offsets && !filter.offsets.some((s) => s.partition === record.partition && record.offset >= s.from && record.offset <= s.to))
    return false;
  return true;
}

// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * A value as a person reads it: JSON indented (or on one line when `oneLine`), other UTF-8
 * text as it is, anything else as `base64:...`.
 */
export function readableBytes(bytes: Buffer | null, oneLine = false): string {
  if (bytes === null) return '(null)';
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes) || CONTROL_CHARS.test(text)) return `base64:${bytes.toString('base64')}`;
  try {
    return JSON.stringify(JSON.parse(text), null, oneLine ? undefined : 2);
  } catch {
    return oneLine ? text.replace(/\s*[\r\n]+\s*/g, ' ') : text;
  }
}

/** The record to put back on its original topic: original key, value and headers, same partition. */
export function replayMessage(record: DlqRecord): { topic: string; message: Message } {
  if (!record.source) throw new Error(`${positionOf(record)} has no ${HEADER_SOURCE_TOPIC} header`);
  return {
    topic: record.source.topic,
    message: { key: record.key, value: record.value, headers: record.headers, partition: record.source.partition },
  };
}

/** One dead letter, however many DLQ copies it has (a retried dead-letter write can leave two). */
export function deadLetterIdentity(record: DlqRecord): string {
  return record.source?.offset === undefined
    ? `dlq:${positionOf(record)}`
    : `${record.stage}\u0000${record.source.topic}\u0000${record.source.partition}\u0000${record.source.offset}`;
}

export type HandledAction = 'resent' | 'discarded';

/** What cdp-dlq did with one DLQ record; the value of its marker on `cdp.dlq-handled`. */
export interface HandledMarker {
  action: HandledAction;
  at: string;
  stage: string;
  source: DlqRecord['source'];
  /** `--reason` of a discard, or for a re-send. */
  reason?: string;
}

export function markerMessage(record: DlqRecord, action: HandledAction, at: Date, reason: string | undefined): Message {
  const marker: HandledMarker = { action, at: at.toISOString(), stage: record.stage, source: record.source, ...(reason ? { reason } : {}) };
  return { key: positionOf(record), value: JSON.stringify(marker) };
}

/** Markers by DLQ position (`partition:offset`); a later marker for a position replaces an earlier one. */
export function readMarker(message: KafkaMessage): [string, HandledMarker] | undefined {
  const key = message.key?.toString('utf8');
  if (!key || !message.value) return undefined;
  try {
    const marker = JSON.parse(message.value.toString('utf8')) as HandledMarker;
    return marker.action === 'resent' || marker.action === 'discarded' ? [key, marker] : undefined;
  } catch {
    return undefined;
  }
}
