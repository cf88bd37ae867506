import { z } from 'zod';
import { segmentMessageSchema } from './message';
import { SOURCE_ID } from './keys';

export const ENVELOPE_VERSION = 1;

export const replaySchema = z.object({
  id: z.string().min(1),
  destinations: z.array(z.string().min(1)),
  force: z.boolean().default(false),
});

/**
 * The value on every topic (DESIGN.md "Envelope"). Strict for the fields it names; fields later
 * stages add pass through.
 */
export const envelopeSchema = z.looseObject({
  v: z.literal(ENVELOPE_VERSION),
  sourceId: z.string().regex(SOURCE_ID),
  messageId: z.string().min(1).max(100),
  receivedAt: z.iso.datetime({ offset: true }),
  message: segmentMessageSchema,
  profileId: z.string().min(1).optional(),
  replay: replaySchema.optional(),
});
export type Envelope = z.infer<typeof envelopeSchema>;

export function decodeEnvelope(value: Buffer | string | null): Envelope {
  if (value === null) throw new Error('empty message value');
  return envelopeSchema.parse(JSON.parse(typeof value === 'string' ? value : value.toString('utf8')));
}

export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(envelope);
}

/** The value of cdp.undelivered: the envelope plus the delivery history summary. */
export const undeliveredSchema = envelopeSchema.extend({
  destinationId: z.string().min(1),
  subscriptionId: z.string().min(1),
  attempts: z.number().int().nonnegative(),
  firstAttemptAt: z.iso.datetime({ offset: true }).nullable(),
  expiredAt: z.iso.datetime({ offset: true }),
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  lastResponseExcerpt: z.string().nullable(),
});
export type Undelivered = z.infer<typeof undeliveredSchema>;

export const REGULATION_TYPES = ['SUPPRESS_ONLY', 'SUPPRESS_WITH_DELETE', 'DELETE_ONLY', 'UNSUPPRESS'] as const;
export type RegulationType = (typeof REGULATION_TYPES)[number];

/** The value of the compacted cdp.regulations topic; a tombstone (null) removes it. */
export const regulationSchema = z.object({
  regulationId: z.string().min(1),
  type: z.enum(REGULATION_TYPES),
  userId: z.string().min(1),
  spaceId: z.string().min(1),
  requestedAt: z.iso.datetime({ offset: true }),
  /** How many records (space and user pairs) the regulation published: a stage's part is done once it handled that many. */
  subjects: z.number().int().positive().optional(),
});
export type Regulation = z.infer<typeof regulationSchema>;

export const STAGE_STATUSES = ['RUNNING', 'FINISHED', 'FAILED'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];

/** The value of the compacted cdp.regulation-status topic (key `regulationId:stage`): one stage's part of a regulation. */
export const regulationStatusSchema = z.object({
  regulationId: z.string().min(1),
  stage: z.string().min(1),
  status: z.enum(STAGE_STATUSES),
  reportedAt: z.iso.datetime({ offset: true }),
  /** Records handled and failed so far; why it failed. */
  handled: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  detail: z.string().optional(),
});
export type RegulationStatus = z.infer<typeof regulationStatusSchema>;

/** True when the user's data must be deleted (in the archive, identity, and at destinations with a delete handler). */
export function deletes(type: RegulationType): boolean {
  return type === 'DELETE_ONLY' || type === 'SUPPRESS_WITH_DELETE';
}

/** Stages named `destination.<destinationId>`: one destination's deletions (reported by the directors, delete regulations only). */
export const DESTINATION_STAGE_PREFIX = 'destination.';

/** The regulation-status stage of one destination's deletions. */
export function deletionStage(destinationId: string): string {
  return `${DESTINATION_STAGE_PREFIX}${destinationId}`;
}

/** True when events of this user must be dropped at the edge. */
export function suppresses(type: RegulationType): boolean {
  return type === 'SUPPRESS_ONLY' || type === 'SUPPRESS_WITH_DELETE';
}

/**
 * The regulation that stops a message, if any: a suppress or delete regulation of its `userId` in
 * the space of its source (UNSUPPRESS lifts it; a message without a userId is never regulated).
 * `lookup` reads the cdp.regulations state, keyed `spaceId:userId`.
 */
export function regulationFor(
  message: { userId?: unknown },
  spaceId: string,
  lookup: (spaceId: string, userId: string) => Regulation | undefined,
): Regulation | undefined {
  const raw = message.userId;
  if ((typeof raw !== 'string' && typeof raw !== 'number') || raw === '') return undefined;
  const regulation = lookup(spaceId, String(raw));
  return regulation !== undefined && regulation.type !== 'UNSUPPRESS' ? regulation : undefined;
}
