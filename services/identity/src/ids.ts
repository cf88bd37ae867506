// The external ids of one event (segment-compat.md §3.4), as `type:value` strings, blocked values
// removed and ordered by priority (highest first).
import type { SegmentMessage } from '@cdp/events';
import type { IdentitySettings } from '@cdp/workspace';

/** `type:value`, the Profile API's spelling of an external id. */
export type IdKey = string;

export const idKey = (type: string, value: string): IdKey => `${type}:${value}`;
export const idType = (key: IdKey): string => key.slice(0, key.indexOf(':'));

const WINDOW_MS = { ever: undefined, weekly: 7 * 86_400_000, monthly: 30 * 86_400_000, annually: 365 * 86_400_000 } as const;

export interface IdRule {
  priority: number;
  limit: number;
  /** Values of this type count toward `limit` only if added within this window (undefined: ever). */
  windowMs: number | undefined;
}

/** A space's identity settings, compiled once per workspace version. */
export interface IdentityRules {
  rule(type: string): IdRule;
  /** Higher priority first; ties (several values of one type) keep their event order. */
  sort(ids: IdKey[]): IdKey[];
  blocked(value: string): boolean;
  maxMerges: number;
  maxMappings: number;
}

export function compileRules(settings: IdentitySettings): IdentityRules {
  const listed = Object.entries(settings.identifiers);
  const lastPriority = Math.max(0, ...listed.map(([, r]) => r.priority));
  const rules = new Map<string, IdRule>(
    listed.map(([type, r]) => [type, { priority: r.priority, limit: r.limit, windowMs: WINDOW_MS[r.window] }]),
  );
  const blockedValues = new Set(settings.blockedValues);
  const blockedPatterns = settings.blockedPatterns.map((p) => new RegExp(p));
  // Types the settings do not name come after the named ones, alphabetically (Segment's default).
  const rank = (type: string): [number, string] => [rules.get(type)?.priority ?? lastPriority + 1, type];
  return {
    rule: (type) => rules.get(type) ?? { priority: lastPriority + 1, limit: settings.defaultLimit, windowMs: undefined },
    sort: (ids) =>
      ids
        .map((id, index) => ({ id, index, rank: rank(idType(id)) }))
        .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1].localeCompare(b.rank[1]) || a.index - b.index)
        .map((x) => x.id),
    blocked: (value) => blockedValues.has(value) || blockedPatterns.some((p) => p.test(value)),
    maxMerges: settings.maxMergesPerProfile,
    maxMappings: settings.maxMappingsPerProfile,
  };
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);
const obj = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/**
 * The ids Segment reads from a message: userId, anonymousId, email (traits or context.traits),
 * device ids by device type, push tokens, context.externalIds of the users collection. An alias's
 * previousId is the anonymous id it joins to the userId. Blocked values are never promoted.
 */
export function eventIds(message: SegmentMessage, rules: IdentityRules): IdKey[] {
  const found: IdKey[] = [];
  const add = (type: string, value: unknown) => {
    const v = text(value);
    if (v !== undefined && !rules.blocked(v) && !found.includes(idKey(type, v))) found.push(idKey(type, v));
  };
  const context = obj(message.context);
  add('user_id', message.userId);
  add('email', obj(message.traits).email ?? obj(context.traits).email);
  add('anonymous_id', message.anonymousId);
  if (message.type === 'alias') add('anonymous_id', message.previousId);
  const device = obj(context.device);
  const platform = text(device.type)?.toLowerCase();
  if (platform === 'android' || platform === 'ios') {
    add(`${platform}.id`, device.id);
    if (device.adTrackingEnabled === true) add(`${platform}.idfa`, device.advertisingId);
    add(`${platform}.push_token`, device.token);
  }
  if (Array.isArray(context.externalIds)) {
    for (const x of context.externalIds) {
      const e = obj(x);
      const type = text(e.type);
      if (type && /^[a-z0-9_.]{1,64}$/.test(type) && (e.collection === undefined || e.collection === 'users')) add(type, e.id);
    }
  }
  return rules.sort(found);
}
