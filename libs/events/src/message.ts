import { z } from 'zod';

export const MESSAGE_TYPES = ['track', 'identify', 'page', 'screen', 'group', 'alias'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** Segment's limit on messageId length. */
export const MAX_MESSAGE_ID_LENGTH = 100;

const id = z.union([z.string(), z.number()]).transform(String);
const json = z.record(z.string(), z.unknown());

/**
 * A Segment message as it travels in the envelope. Strict for the fields it names, passing
 * unknown ones (`_metadata`, `channel`, SDK extras) through unchanged.
 */
export const segmentMessageSchema = z.looseObject({
  type: z.enum(MESSAGE_TYPES),
  messageId: z.string().min(1).max(MAX_MESSAGE_ID_LENGTH),
  userId: id.nullish(),
  anonymousId: id.nullish(),
  previousId: id.nullish(),
  groupId: id.nullish(),
  event: z.string().nullish(),
  name: z.string().nullish(),
  category: z.string().nullish(),
  timestamp: z.string().nullish(),
  originalTimestamp: z.string().nullish(),
  sentAt: z.string().nullish(),
  receivedAt: z.string().nullish(),
  context: json.nullish(),
  integrations: json.nullish(),
  properties: json.nullish(),
  traits: json.nullish(),
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
 * the rest of its batch is kept). Expects `messageId` to be filled in already.
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
  const parsed = segmentMessageSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: 'invalid_field', detail: `${issue.path.join('.')}: ${issue.message}` };
  }
  return { ok: true, message: parsed.data };
}

/**
 * Segment's clock-skew correction: `timestamp = receivedAt − (sentAt − timestamp)`, keeping the
 * client's value as `originalTimestamp`. Without `sentAt` the timestamp is kept as sent; without
 * any timestamp the server time is used.
 */
export type Stamped<M> = M & { timestamp: string; receivedAt: string; originalTimestamp?: string; sentAt?: string };

export function correctTimestamp<M extends Record<string, unknown>>(
  message: M,
  receivedAt: Date,
  batchSentAt?: unknown,
): Stamped<M> {
  const out: Record<string, unknown> = { ...message, receivedAt: receivedAt.toISOString() };
  const client = parseTime(message.timestamp) ?? parseTime(message.originalTimestamp);
  const sentAt = parseTime(message.sentAt) ?? parseTime(batchSentAt);
  if (!client) {
    out.timestamp = receivedAt.toISOString();
    return out as Stamped<M>;
  }
  out.originalTimestamp = (message.originalTimestamp as string | undefined) ?? (message.timestamp as string);
  out.timestamp = sentAt
    ? new Date(receivedAt.getTime() - (sentAt.getTime() - client.getTime())).toISOString()
    : client.toISOString();
  if (sentAt && out.sentAt === undefined) out.sentAt = sentAt.toISOString();
  return out as Stamped<M>;
}

function parseTime(v: unknown): Date | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d;
}
