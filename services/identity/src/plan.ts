// Segment's flat matching with merge protection (segment-compat.md §3.4), as a pure function of
// the event's ids, where they map today and the profiles they map to.
import { idType, type IdentityRules, type IdKey } from './ids';

/** What resolution needs of a live profile. */
export interface ProfileView {
  profileId: string;
  createdAt: number;
  /** Every id of the profile with the time it was added (ms). */
  ids: Record<IdKey, number>;
  /** Merges into this profile so far (its own and those of the profiles merged into it). */
  merges: number;
}

export type RefusalReason = 'value_limit' | 'merge_cap' | 'mapping_cap';

export interface Refusal {
  reason: RefusalReason;
  /** The id dropped from the event (value_limit) or left unmapped (caps). */
  id: IdKey;
  /** value_limit: the identifier type whose limit the match would break. */
  type?: string;
}

export type Plan =
  | { kind: 'unresolved'; refusals: Refusal[] }
  | { kind: 'create'; ids: IdKey[]; refusals: Refusal[] }
  | { kind: 'attach'; profileId: string; newIds: IdKey[]; refusals: Refusal[] }
  | { kind: 'merge'; winner: string; losers: string[]; newIds: IdKey[]; refusals: Refusal[] };

/** The identifier type whose limit `ids` (with the times they were added) break, if any. */
function brokenLimit(ids: Iterable<[IdKey, number]>, rules: IdentityRules, now: number): string | undefined {
  const counts = new Map<string, number>();
  for (const [id, addedAt] of ids) {
    const type = idType(id);
    const { limit, windowMs } = rules.rule(type);
    if (windowMs !== undefined && addedAt < now - windowMs) continue;
    const n = (counts.get(type) ?? 0) + 1;
    if (n > limit) return type;
    counts.set(type, n);
  }
  return undefined;
}

/** Oldest profile wins, then the smaller id: the same profiles give the same winner in any order. */
const byAge = (a: ProfileView, b: ProfileView) => a.createdAt - b.createdAt || (a.profileId < b.profileId ? -1 : 1);

/**
 * `eventIds` in priority order (highest first); `mapped` gives the live profile of each mapped
 * id; `profiles` those profiles. When a match would break a value limit the event's
 * lowest-priority id is dropped and matching is retried, as Segment does (this can create a new
 * profile instead of merging). At the merge or mapping cap, nothing is merged or added and the
 * event resolves to the profile of its highest-priority mapped id.
 */
export function planResolution(
  eventIds: readonly IdKey[],
  mapped: ReadonlyMap<IdKey, string>,
  profiles: ReadonlyMap<string, ProfileView>,
  rules: IdentityRules,
  now: number,
): Plan {
  const remaining = [...eventIds];
  const refusals: Refusal[] = [];
  const drop = (type: string) => refusals.push({ reason: 'value_limit', id: remaining.pop()!, type });

  while (remaining.length > 0) {
    const matchedIds = remaining.filter((id) => mapped.has(id));
    const newIds = remaining.filter((id) => !mapped.has(id));
    const matched = [...new Set(matchedIds.map((id) => mapped.get(id)!))].map((p) => {
      const profile = profiles.get(p);
      if (!profile) throw new Error(`profile ${p} of a mapped id was not loaded`);
      return profile;
    });

    if (matched.length === 0) {
      const broken = brokenLimit(
        remaining.map((id) => [id, now]),
        rules,
        now,
      );
      if (broken !== undefined) {
        drop(broken);
        continue;
      }
      const ids = remaining.slice(0, rules.maxMappings);
      for (const id of remaining.slice(rules.maxMappings)) refusals.push({ reason: 'mapping_cap', id });
      return { kind: 'create', ids, refusals };
    }

    const union = new Map<IdKey, number>();
    for (const p of matched) for (const [id, at] of Object.entries(p.ids)) union.set(id, Math.min(at, union.get(id) ?? at));
    for (const id of newIds) union.set(id, now);
    const broken = brokenLimit(union, rules, now);
    if (broken !== undefined) {
      drop(broken);
      continue;
    }

    // The profile of the event's highest-priority mapped id: where a refused merge resolves.
    const first = mapped.get(matchedIds[0])!;
    if (matched.length > 1) {
      const merges = matched.reduce((n, p) => n + p.merges, 0) + matched.length - 1;
      const reason: RefusalReason | undefined =
        merges > rules.maxMerges ? 'merge_cap' : union.size > rules.maxMappings ? 'mapping_cap' : undefined;
      if (reason !== undefined) {
        for (const id of remaining) if (mapped.get(id) !== first) refusals.push({ reason, id });
        return { kind: 'attach', profileId: first, newIds: [], refusals };
      }
      const [winner, ...losers] = [...matched].sort(byAge);
      return { kind: 'merge', winner: winner.profileId, losers: losers.map((p) => p.profileId), newIds, refusals };
    }

    const room = Math.max(0, rules.maxMappings - Object.keys(matched[0].ids).length);
    for (const id of newIds.slice(room)) refusals.push({ reason: 'mapping_cap', id });
    return { kind: 'attach', profileId: first, newIds: newIds.slice(0, room), refusals };
  }
  return { kind: 'unresolved', refusals };
}
