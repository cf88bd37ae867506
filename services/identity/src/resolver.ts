// Resolves one event's ids to a profile: read (cache, then DynamoDB), plan (plan.ts), write
// conditionally; a lost race reads again without the cache and plans again.
import { randomUUID } from 'node:crypto';
import type { SegmentMessage } from '@cdp/events';
import { RetriableError } from '@cdp/kafka';
import { TtlCache } from './cache';
import {
  MAX_REFUSAL_RECORDS,
  StaleError,
  type GraphStore,
  type MergeRecord,
  type Profile,
  type ProfileChange,
  type RefusalRecord,
  type Touch,
  type Traits,
} from './graph';
import { eventIds, type IdentityRules, type IdKey } from './ids';
import { contention, mergesDone, profilesCreated, refusals as refusalCount } from './metrics';
import { planResolution, type Refusal } from './plan';

export interface ResolveInput {
  spaceId: string;
  rules: IdentityRules;
  message: SegmentMessage;
  /** The event's time (ms): orders trait updates and first/last seen. */
  timestamp: number;
  /** The event's source, recorded with new mappings, first/last seen and merge explanations. */
  sourceId?: string;
}

export type Outcome = 'created' | 'attached' | 'merged' | 'known' | 'unresolved';

export interface Resolution {
  /** Absent when the event carries no usable id (all missing or blocked). */
  profileId?: string;
  outcome: Outcome;
  refusals: Refusal[];
  /** The event's usable ids (blocked values left out), highest priority first. */
  ids: IdKey[];
}

export interface ResolverOptions {
  cacheTtlMs: number;
  cacheEntries: number;
  now?: () => number;
  newProfileId?: () => string;
  /** Test hook: runs between the reads and the conditional write of each attempt. */
  beforeWrite?: (input: ResolveInput, attempt: number) => Promise<void>;
}

const MAX_ATTEMPTS = 10;
/** Merge chains are bounded by the merge cap; this only guards against a corrupt graph. */
const MAX_CHAIN = 10_000;

/** Traits of an identify, later event wins per trait; `changed` when anything differs. */
export function mergeTraits(
  current: Traits,
  incoming: Record<string, unknown>,
  at: number,
  sourceId?: string,
): { traits: Traits; changed: boolean } {
  const traits: Traits = { ...current };
  let changed = false;
  for (const [name, v] of Object.entries(incoming)) {
    const old = traits[name];
    // An equal value is not rewritten: most identifies repeat what the profile holds.
    if (old && (old.t > at || JSON.stringify(old.v) === JSON.stringify(v))) continue;
    traits[name] = sourceId ? { v, t: at, s: sourceId } : { v, t: at };
    changed = true;
  }
  return { traits, changed };
}

function unionTraits(profiles: Profile[]): Traits {
  let traits: Traits = {};
  for (const p of profiles) {
    for (const [name, value] of Object.entries(p.traits))
      if (!traits[name] || traits[name].t < value.t) traits = { ...traits, [name]: value };
  }
  return traits;
}

/** Refusals a profile keeps: the first per reason and id, at most MAX_REFUSAL_RECORDS. */
function withRefusals(log: RefusalRecord[], records: RefusalRecord[]): { log: RefusalRecord[]; changed: boolean } {
  const seen = new Set(log.map((r) => `${r.reason} ${r.id}`));
  const added = records.filter((r) => !seen.has(`${r.reason} ${r.id}`) && seen.add(`${r.reason} ${r.id}`));
  const room = Math.max(0, MAX_REFUSAL_RECORDS - log.length);
  return room === 0 || added.length === 0 ? { log, changed: false } : { log: [...log, ...added.slice(0, room)], changed: true };
}

const incomingTraits = (m: SegmentMessage): Record<string, unknown> => (m.type === 'identify' && m.traits ? m.traits : {});

export class Resolver {
  private readonly idCache: TtlCache<string>;
  private readonly profileCache: TtlCache<Profile>;
  private readonly now: () => number;
  private readonly newProfileId: () => string;

  constructor(
    private readonly store: GraphStore,
    private readonly options: ResolverOptions,
  ) {
    this.idCache = new TtlCache('ids', options.cacheTtlMs, options.cacheEntries);
    this.profileCache = new TtlCache('profiles', options.cacheTtlMs, options.cacheEntries);
    this.now = options.now ?? Date.now;
    this.newProfileId = options.newProfileId ?? randomUUID;
  }

  async resolve(input: ResolveInput): Promise<Resolution> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        return await this.attempt(input, attempt);
      } catch (error) {
        if (!(error instanceof StaleError)) throw error;
        contention.inc();
      }
    }
    throw new RetriableError(`identity: ${MAX_ATTEMPTS} conditional writes in a row lost a race`);
  }

  /** The live profile a (possibly merged-away) profile leads to. */
  async live(spaceId: string, profileId: string, cached: boolean): Promise<Profile> {
    let id = profileId;
    for (let hops = 0; hops < MAX_CHAIN; hops++) {
      const key = `${spaceId}|${id}`;
      let p = cached ? this.profileCache.get(key) : undefined;
      if (!p) {
        p = await this.store.profile(spaceId, id);
        if (!p) throw new StaleError(`profile ${id} not found`);
        this.profileCache.set(key, p);
      }
      if (!p.mergedInto) return p;
      id = p.mergedInto;
    }
    throw new Error(`profile ${profileId}: mergedInto chain longer than ${MAX_CHAIN}`);
  }

  private async attempt(input: ResolveInput, attempt: number): Promise<Resolution> {
    const { spaceId, rules, message, timestamp } = input;
    const cached = attempt === 1;
    const ids = eventIds(message, rules);
    const now = this.now();

    const raw = new Map<IdKey, string>();
    const misses: IdKey[] = [];
    for (const id of ids) {
      const hit = cached ? this.idCache.get(`${spaceId}|${id}`) : undefined;
      if (hit) raw.set(id, hit);
      else misses.push(id);
    }
    if (misses.length > 0) for (const [id, p] of await this.store.mappings(spaceId, misses)) raw.set(id, p);

    const mapped = new Map<IdKey, string>();
    const profiles = new Map<string, Profile>();
    for (const [id, p] of raw) {
      const live = await this.live(spaceId, p, cached);
      mapped.set(id, live.profileId);
      profiles.set(live.profileId, live);
    }

    const plan = planResolution(ids, mapped, profiles, rules, now);
    const traits = incomingTraits(message);
    const origin = { sourceId: input.sourceId ?? '', messageId: message.messageId };
    const refusalRecords: RefusalRecord[] = plan.refusals.map((r) => ({
      at: now,
      reason: r.reason,
      id: r.id,
      ...(r.type !== undefined && { type: r.type }),
      ...(mapped.has(r.id) && { profileId: mapped.get(r.id) }),
      ...origin,
    }));
    await this.options.beforeWrite?.(input, attempt);

    let result: Resolution;
    let written: Profile | undefined;
    switch (plan.kind) {
      case 'unresolved':
        return { outcome: 'unresolved', refusals: plan.refusals, ids };
      case 'create': {
        written = {
          spaceId,
          profileId: this.newProfileId(),
          createdAt: now,
          version: 1,
          ids: Object.fromEntries(plan.ids.map((id) => [id, now])),
          mergedFrom: [],
          merges: 0,
          traits: mergeTraits({}, traits, timestamp, origin.sourceId).traits,
          events: 0,
          firstSeenAt: timestamp,
          lastSeenAt: timestamp,
          firstMessageId: message.messageId,
          lastMessageId: message.messageId,
          firstSourceId: origin.sourceId,
          lastSourceId: origin.sourceId,
          mergeLog: [],
          refusalLog: withRefusals([], refusalRecords).log,
        };
        await this.store.create(written);
        profilesCreated.inc();
        result = { profileId: written.profileId, outcome: 'created', refusals: plan.refusals, ids };
        break;
      }
      case 'attach': {
        const p = profiles.get(plan.profileId)!;
        const next = mergeTraits(p.traits, traits, timestamp, origin.sourceId);
        const refused = withRefusals(p.refusalLog, refusalRecords);
        result = { profileId: p.profileId, outcome: 'known', refusals: plan.refusals, ids };
        if (plan.newIds.length === 0 && !next.changed && !refused.changed) break;
        const change: ProfileChange = { ids: { ...p.ids, ...Object.fromEntries(plan.newIds.map((id) => [id, now])) }, traits: next.traits };
        if (refused.changed) change.refusalLog = refused.log;
        await this.store.attach(p, change, plan.newIds, now, origin);
        written = { ...p, ...change, version: p.version + 1 };
        result.outcome = plan.newIds.length > 0 ? 'attached' : 'known';
        break;
      }
      case 'merge': {
        const winner = profiles.get(plan.winner)!;
        const losers = plan.losers.map((l) => profiles.get(l)!);
        const all = [winner, ...losers];
        const allIds: Record<IdKey, number> = {};
        for (const p of all) for (const [id, at] of Object.entries(p.ids)) allIds[id] = Math.min(at, allIds[id] ?? at);
        for (const id of plan.newIds) allIds[id] = now;
        const first = all.reduce((a, b) => (b.firstSeenAt < a.firstSeenAt ? b : a));
        const last = all.reduce((a, b) => (b.lastSeenAt > a.lastSeenAt ? b : a));
        const record: MergeRecord = {
          at: now,
          merged: losers.map((l) => l.profileId),
          ...origin,
          ids: ids.filter((id) => mapped.has(id)),
        };
        const change: ProfileChange = {
          ids: allIds,
          traits: mergeTraits(unionTraits(all), traits, timestamp, origin.sourceId).traits,
          mergedFrom: [...winner.mergedFrom, ...losers.flatMap((l) => [l.profileId, ...l.mergedFrom])],
          merges: all.reduce((n, p) => n + p.merges, 0) + losers.length,
          events: all.reduce((n, p) => n + p.events, 0),
          firstSeenAt: first.firstSeenAt,
          firstMessageId: first.firstMessageId,
          lastSeenAt: last.lastSeenAt,
          lastMessageId: last.lastMessageId,
          firstSourceId: first.firstSourceId,
          lastSourceId: last.lastSourceId,
          mergeLog: [...all.flatMap((p) => p.mergeLog), record].sort((a, b) => a.at - b.at),
          refusalLog: withRefusals(
            all.flatMap((p) => p.refusalLog),
            refusalRecords,
          ).log.slice(0, MAX_REFUSAL_RECORDS),
        };
        await this.store.merge(winner, losers, change, plan.newIds, now, origin);
        mergesDone.inc(losers.length);
        for (const l of losers) this.profileCache.delete(`${spaceId}|${l.profileId}`);
        written = { ...winner, ...change, version: winner.version + 1 } as Profile;
        result = { profileId: winner.profileId, outcome: 'merged', refusals: plan.refusals, ids };
        break;
      }
    }
    for (const r of plan.refusals) refusalCount.labels(r.reason).inc();
    if (written) this.profileCache.set(`${spaceId}|${written.profileId}`, written);
    const profileId = result.profileId!;
    for (const id of ids)
      if (mapped.get(id) === profileId || (written && id in written.ids)) this.idCache.set(`${spaceId}|${id}`, profileId);
    return result;
  }

  /**
   * Adds events to a profile's counters; if it was merged away meanwhile, to the profile it
   * leads to. Returns the profile that was counted (the event's profileId to publish) as it is
   * after the count.
   */
  async touch(spaceId: string, profileId: string, t: Touch): Promise<Profile> {
    let id = profileId;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        const p = await this.store.touch(spaceId, id, t);
        this.profileCache.set(`${spaceId}|${id}`, p);
        return p;
      } catch (error) {
        if (!(error instanceof StaleError)) throw error;
        contention.inc();
        id = (await this.live(spaceId, id, false)).profileId;
      }
    }
    throw new RetriableError(`identity: counting events of ${profileId} lost ${MAX_ATTEMPTS} races`);
  }
}
