import { z } from 'zod';

export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** Segment's limit on messageId length. */
export const MAX_MESSAGE_ID_LENGTH = 100;

/** How each named field of a message is typed; every one of them may be null or absent. */
const FIELD_KINDS = {
  userId: 'id',
  anonymousId: 'id',
  previousId: 'id',
  groupId: 'id',
  event: 'string',
  name: 'string',
  category: 'string',
  timestamp: 'string',
  originalTimestamp: 'string',
  sentAt: 'string',
  receivedAt: 'string',
  context: 'object',
  integrations: 'object',
  properties: 'object',
  traits: 'object',
} as const;
type FieldKind = (typeof FIELD_KINDS)[keyof typeof FIELD_KINDS];
const FIELD_ENTRIES = Object.entries(FIELD_KINDS) as Array<[keyof typeof FIELD_KINDS, FieldKind]>;

const ZOD_KIND = {
  id: z.union([z.string(), z.number()]).transform(String),
  string: z.string(),
  object: z.record(z.string(), z.unknown()),
};

/**
 * A Segment message as it travels in the envelope. Strict for the fields it names, passing
 * unknown ones (`_metadata`, `channel`, SDK extras) through unchanged. Built from FIELD_KINDS,
 * which the hot-path check in validateMessage reads too.
 */
export const segmentMessageSchema = z.looseObject({
  type: z.enum(MESSAGE_TYPES),
  messageId: z.string().min(1).max(MAX_MESSAGE_ID_LENGTH),
  ...(Object.fromEntries(FIELD_ENTRIES.map(([field, kind]) => [field, ZOD_KIND[kind].nullish()])) as {
    [F in keyof typeof FIELD_KINDS]: ReturnType<(typeof ZOD_KIND)[(typeof FIELD_KINDS)[F]]['nullish']>;
  }),
});
export type SegmentMessage = z.infer<typeof segmentMessageSchema>;

export type InvalidReason =
  | 'not_an_object'
  | 'invalid_type'
  | 'missing_message_id'
  | 'message_id_too_long'
  | 'missing_user_id'
  | 'missing_event'
  | 'missing_group_id'
  | 'missing_previous_id'
  | 'invalid_field';

export const INVALID_REASONS: readonly InvalidReason[] = [
  'not_an_object',
  'invalid_type',
  'missing_message_id',
  'message_id_too_long',
  'missing_user_id',
  'missing_event',
  'missing_group_id',
  'missing_previous_id',
  'invalid_field',
];

const present = (v: unknown) => v !== undefined && v !== null && v !== '';

/**
 * Segment's per-event semantic rules (a failing event is dropped with a counted reason while
 * the rest of its batch is kept). Expects `messageId` to be filled in already. Normalizes in
 * place (numeric ids become strings) and returns the same object: no copy per event.
 */
export function validateMessage(
  raw: unknown,
): { ok: true; message: SegmentMessage } | { ok: false; reason: InvalidReason; detail?: string } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'not_an_object' };
  const m = raw as Record<string, unknown>;
  if (!MESSAGE_TYPES.includes(m.type as MessageType)) return { ok: false, reason: 'invalid_type' };
  if (!present(m.messageId)) return { ok: false, reason: 'missing_message_id' };
  if (typeof m.messageId === 'string' && m.messageId.length > MAX_MESSAGE_ID_LENGTH) {
    return { ok: false, reason: 'message_id_too_long' };
  }
  if (m.type === 'alias') {
    if (!present(m.userId)) return { ok: false, reason: 'missing_user_id' };
    if (!present(m.previousId)) return { ok: false, reason: 'missing_previous_id' };
  } else if (!present(m.userId) && !present(m.anonymousId)) {
    return { ok: false, reason: 'missing_user_id' };
  }
  if (m.type === 'track' && !present(m.event)) return { ok: false, reason: 'missing_event' };
  if (m.type === 'group' && !present(m.groupId)) return { ok: false, reason: 'missing_group_id' };
  if (typeof m.messageId !== 'string')
    return { ok: false, reason: 'invalid_field', detail: `messageId: expected string, received ${kindOf(m.messageId)}` };
  // The same rules as segmentMessageSchema without building a copy (tapi runs this per event).
  for (const [field, kind] of FIELD_ENTRIES) {
    const v = m[field];
    if (v === undefined || v === null) continue;
    if (kind === 'id') {
      if (typeof v === 'number') m[field] = String(v);
      else if (typeof v !== 'string') return invalidField(field, 'string or number', v);
    } else if (kind === 'string') {
      if (typeof v !== 'string') return invalidField(field, 'string', v);
    } else if (typeof v !== 'object' || Array.isArray(v)) {
      return invalidField(field, 'object', v);
    }
  }
  return { ok: true, message: m as SegmentMessage };
}

function kindOf(v: unknown): string {
  return Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v;
}

function invalidField(field: string, expected: string, v: unknown): { ok: false; reason: InvalidReason; detail: string } {
  return { ok: false, reason: 'invalid_field', detail: `${field}: expected ${expected}, received ${kindOf(v)}` };
}

/** The request-wide inputs of skew correction, computed once per request rather than per event. */
export interface RequestClock {
  receivedAtMs: number;
  receivedAtIso: string;
  batchSentAtMs?: number;
  batchSentAtIso?: string;
}

export function requestClock(receivedAt: Date, batchSentAt?: unknown): RequestClock {
  const sentMs = timeOf(batchSentAt);
  return {
    receivedAtMs: receivedAt.getTime(),
    receivedAtIso: receivedAt.toISOString(),
    batchSentAtMs: sentMs,
    batchSentAtIso: sentMs === undefined ? undefined : new Date(sentMs).toISOString(),
  };
}

export type Stamped<M> = M & { timestamp: string; receivedAt: string; originalTimestamp?: string; sentAt?: string };

/**
 * Segment's clock-skew correction: `timestamp = receivedAt − (sentAt − timestamp)`, keeping the
 * client's value as `originalTimestamp`. Without `sentAt` the timestamp is kept as sent; without
 * any timestamp the server time is used. Writes into `message` (tapi owns each parsed event).
 */
export function stampMessage(message: Record<string, unknown>, clock: RequestClock): void {
  message.receivedAt = clock.receivedAtIso;
  const clientMs = timeOf(message.timestamp) ?? timeOf(message.originalTimestamp);
  if (clientMs === undefined) {
    message.timestamp = clock.receivedAtIso;
    return;
  }
  const ownSentMs = timeOf(message.sentAt);
  const sentMs = ownSentMs ?? clock.batchSentAtMs;
  message.originalTimestamp ??= message.timestamp;
  // A skew so large the corrected time leaves Date's range keeps the client's value.
  message.timestamp = isoOf(sentMs === undefined ? clientMs : clock.receivedAtMs - (sentMs - clientMs)) ?? isoOf(clientMs);
  if (ownSentMs === undefined && sentMs !== undefined && message.sentAt === undefined) message.sentAt = clock.batchSentAtIso;
}

/** The copying form of stampMessage, for callers that must not touch their input. */
export function correctTimestamp<M extends Record<string, unknown>>(message: M, receivedAt: Date, batchSentAt?: unknown): Stamped<M> {
  const out: Record<string, unknown> = { ...message };
  stampMessage(out, requestClock(receivedAt, batchSentAt));
  return out as Stamped<M>;
}

function timeOf(v: unknown): number | undefined {
  const ms = typeof v === 'string' ? Date.parse(v) : typeof v === 'number' ? new Date(v).getTime() : NaN;
  return Number.isNaN(ms) ? undefined : ms;
}

/** Date's range is ±8.64e15 ms; outside it toISOString would throw. */
function isoOf(ms: number): string | undefined {
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : undefined;
}
