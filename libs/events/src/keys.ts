// Kafka keys of DESIGN.md's topic table, built and parsed in one place.

export const SOURCE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** `sourceId:messageId` — the key of cdp.ingest and cdp.deduped (co-partitioned). */
export function messageKey(sourceId: string, messageId: string): string {
  if (!SOURCE_ID.test(sourceId)) throw new Error(`invalid sourceId "${sourceId}"`);
  return `${sourceId}:${messageId}`;
}

/** Splits at the first colon: source ids never contain one, message ids may. */
export function parseMessageKey(key: string): { sourceId: string; messageId: string } {
  const i = key.indexOf(':');
  if (i <= 0) throw new Error(`not a sourceId:messageId key: "${key.slice(0, 120)}"`);
  const sourceId = key.slice(0, i);
  if (!SOURCE_ID.test(sourceId)) throw new Error(`invalid sourceId in key "${key.slice(0, 120)}"`);
  return { sourceId, messageId: key.slice(i + 1) };
}

/** `sourceId:destinationId` — the key of cdp.undelivered. */
export function undeliveredKey(sourceId: string, destinationId: string): string {
  return `${sourceId}:${destinationId}`;
}

/** `spaceId:userId` — the key of the compacted cdp.regulations topic. */
export function regulationKey(spaceId: string, userId: string): string {
  return `${spaceId}:${userId}`;
}

export function parseRegulationKey(key: string): { spaceId: string; userId: string } {
  const i = key.indexOf(':');
  if (i <= 0) throw new Error(`not a spaceId:userId key: "${key.slice(0, 120)}"`);
  return { spaceId: key.slice(0, i), userId: key.slice(i + 1) };
}

/** `regulationId:stage` — the key of the compacted cdp.regulation-status topic. */
export function regulationStatusKey(regulationId: string, stage: string): string {
  return `${regulationId}:${stage}`;
}
