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

/** Reads what dedup needs from an envelope without validating all of it (hot path). */
export function readReceivedAt(value: Buffer | null): number {
  if (!value) throw new Error('empty message value');
  const parsed = JSON.parse(value.toString('utf8')) as { receivedAt?: unknown; v?: unknown };
  if (parsed.v !== 1) throw new Error(`unsupported envelope version ${String(parsed.v)}`);
  const ms = typeof parsed.receivedAt === 'string' ? Date.parse(parsed.receivedAt) : NaN;
  if (Number.isNaN(ms)) throw new Error('envelope has no valid receivedAt');
  return ms;
}
