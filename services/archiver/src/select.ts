import { decodeEnvelope, regulationFor, undeliveredSchema, type Envelope, type Regulation } from '@cdp/events';
import { hourOf, type ArchiveKind } from './layout';
import type { ArchiveRecord } from './writer';

/** What the archiver does with one consumed record. */
export type Selection = { archive: ArchiveRecord } | { skip: 'replay' | 'regulated' } | { poison: unknown };

export interface SelectContext {
  /** The space of a source (from the workspace); undefined for an unknown source. */
  spaceOf(sourceId: string): string | undefined;
  /** The regulation in force for a user of a space, if any. */
  regulation(spaceId: string, userId: string): Regulation | undefined;
}

/** Suppressed and deleted users' events are not archived; UNSUPPRESS lifts it. */
export function isRegulated(envelope: { sourceId: string; message: { userId?: unknown } }, ctx: SelectContext): boolean {
  const space = ctx.spaceOf(envelope.sourceId);
  return space !== undefined && regulationFor(envelope.message, space, ctx.regulation) !== undefined;
}

/**
 * Decides for one record of cdp.deduped (raw) or cdp.undelivered: archive it (the value as one
 * JSON line, in its group), skip it (replayed events are archived already; regulated users'
 * events are never archived), or poison (not an envelope: cdp.dlq).
 */
export function selectRecord(kind: ArchiveKind, offset: string, value: Buffer | null, ctx: SelectContext): Selection {
  let envelope: Envelope;
  let destinationId: string | undefined;
  try {
    envelope = decodeEnvelope(value);
    if (kind === 'undelivered') destinationId = undeliveredSchema.parse(envelope).destinationId;
  } catch (error) {
    return { poison: error };
  }
  if (envelope.replay) return { skip: 'replay' };
  if (isRegulated(envelope, ctx)) return { skip: 'regulated' };
  const text = value!.toString('utf8');
  // One record, one line: a value written with newlines in it is written again compactly.
  const line = text.includes('\n') ? JSON.stringify(JSON.parse(text)) : text;
  return {
    archive: {
      offset,
      line,
      receivedAt: envelope.receivedAt,
      userId: envelope.message.userId,
      group: { kind, sourceId: envelope.sourceId, destinationId, hour: hourOf(envelope.receivedAt) },
    },
  };
}
