import { parseMessageKey } from '@cdp/events';

export interface Candidate {
  key: string;
  receivedAtMs: number;
}

/**
 * Splits a chunk (in offset order) into first copies and duplicates. `seen` maps keys already
 * published to the receivedAt of their accepted copy; a copy is a duplicate when it arrives
 * less than a window after that. Accepted keys are added to `seen`, so duplicates inside the
 * same chunk are caught too.
 */
export function decide<T extends Candidate>(items: T[], seen: Map<string, number>, windowMs: number): { accepted: T[]; duplicates: T[] } {
  const accepted: T[] = [];
  const duplicates: T[] = [];
  for (const item of items) {
    const first = seen.get(item.key);
    if (first !== undefined && item.receivedAtMs - first < windowMs) {
      duplicates.push(item);
    } else {
      accepted.push(item);
      seen.set(item.key, item.receivedAtMs);
    }
  }
  return { accepted, duplicates };
}

interface EnvelopeFields {
  v?: unknown;
  sourceId?: unknown;
  messageId?: unknown;
  receivedAt?: unknown;
  message?: unknown;
}

function parseEnvelope(value: Buffer | null): EnvelopeFields {
  if (!value) throw new Error('empty message value');
  const parsed = JSON.parse(value.toString('utf8')) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('envelope is not a JSON object');
  const envelope = parsed as EnvelopeFields;
  if (envelope.v !== 1) throw new Error(`unsupported envelope version ${String(envelope.v)}`);
  return envelope;
}

function receivedAtMs(envelope: EnvelopeFields): number {
  const ms = typeof envelope.receivedAt === 'string' ? Date.parse(envelope.receivedAt) : NaN;
  if (Number.isNaN(ms)) throw new Error('envelope has no valid receivedAt');
  return ms;
}

/**
 * Reads receivedAt of a record dedup itself published (repair of the output tail): it was
 * checked by `readIngestRecord` on the way in.
 */
export function readReceivedAt(value: Buffer | null): number {
  return receivedAtMs(parseEnvelope(value));
}

export interface IngestRecord {
  key: string;
  sourceId: string;
  receivedAtMs: number;
}

/**
 * Checks what dedup relies on in an input record, without validating the whole envelope (hot
 * path; tapi validated the event): a `sourceId:messageId` key equal to the envelope's own
 * sourceId and messageId (the key is what dedup drops copies on, and partitions by), a v1
 * envelope, a valid receivedAt and a `message` object. Throws with the reason otherwise.
 */
export function readIngestRecord(key: string | null, value: Buffer | null): IngestRecord {
  if (!key) throw new Error('message has no key');
  const { sourceId } = parseMessageKey(key);
  const envelope = parseEnvelope(value);
  if (typeof envelope.sourceId !== 'string' || typeof envelope.messageId !== 'string') {
    throw new Error('envelope has no sourceId or messageId');
  }
  if (key !== `${envelope.sourceId}:${envelope.messageId}`) {
    throw new Error(`key "${key.slice(0, 120)}" does not match the envelope's sourceId:messageId`);
  }
  if (typeof envelope.message !== 'object' || envelope.message === null || Array.isArray(envelope.message)) {
    throw new Error('envelope has no message');
  }
  return { key, sourceId, receivedAtMs: receivedAtMs(envelope) };
}
