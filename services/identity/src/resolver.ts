// Resolves one event's ids to a profile: read (cache, then DynamoDB), plan (plan.ts), write
// conditionally; a lost race reads again without the cache and plans again.
import { randomUUID } from 'node:crypto';
import type { SegmentMessage } from '@cdp/events';
import { RetriableError } from '@cdp/kafka';
import { BATCH_CONCURRENCY, eachLimit } from './batch';
import { TtlCache } from './cache';
import {
  MAX_REFUSAL_RECORDS,
  StaleError,
  type Counted,
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
  /**
   * Ids its chunk's prefetch found unmapped (and the lookups it counted): the first attempt takes
   * them as unmapped without reading them again.
   */
  prefetched?: Prefetched;
}

/** What a chunk's prefetch found: the ids with no mapping. */
export interface Prefetched {
  spaceId: string;
  unmapped: ReadonlySet<IdKey>;
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
/**
 * Profiles counted in one transaction (DynamoDB's limit is 100): one item whose counter moved
 * meanwhile cancels the others with it, so a smaller transaction loses less.
 */
const TRANSACTION_ITEMS = 25;
/** Transactions sent for one batch before the rest of it goes one profile at a time. */
const TRANSACTION_ROUNDS = 2;
/** Counter updates in flight at once on the one-call-each path. */
const TOUCH_CONCURRENCY = 16;
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

/** A touch sent in a transaction: its index, the counter it expects, whether it counts only. */
interface Together {
  i: number;
  expected: number;
  laterSeen: boolean;
}

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

  /**
   * Reads the mappings of a chunk's ids and the profiles they lead to into the caches, 100 a call
   * (what is cached already is not read): the chunk's events then resolve from the caches, one
   * after another, without a read each. Staleness is safe: writes stay conditional.
   */
  async prefetch(spaceId: string, ids: Iterable<IdKey>): Promise<Prefetched> {
    const targets = new Set<string>();
    const misses: IdKey[] = [];
    for (const id of new Set(ids)) {
      const hit = this.idCache.get(`${spaceId}|${id}`);
      if (hit) targets.add(hit);
      else misses.push(id);
    }
    const mapped = misses.length > 0 ? await this.store.mappings(spaceId, misses) : new Map<IdKey, string>();
    for (const [id, p] of mapped) {
      this.idCache.set(`${spaceId}|${id}`, p);
      targets.add(p);
    }
    // The profiles mapped to, then the profiles those were merged into, until every chain ends in the cache.
    let wanted = [...targets];
    for (let hops = 0; hops < MAX_CHAIN && wanted.length > 0; hops++) {
      const missing = wanted.filter((p) => this.profileCache.get(`${spaceId}|${p}`) === undefined);
      const next: string[] = [];
      for (const p of missing.length > 0 ? await this.store.profiles(spaceId, missing) : []) {
        this.profileCache.set(`${spaceId}|${p.profileId}`, p);
        if (p.mergedInto) next.push(p.mergedInto);
      }
      wanted = next;
    }
    return { spaceId, unmapped: new Set(misses.filter((id) => !mapped.has(id))) };
  }

  /** The live profile a (possibly merged-away) profile leads to. */
  async live(spaceId: string, profileId: string, cached: boolean, counted = true): Promise<Profile> {
    let id = profileId;
    for (let hops = 0; hops < MAX_CHAIN; hops++) {
      const key = `${spaceId}|${id}`;
      let p = !cached ? undefined : counted ? this.profileCache.get(key) : this.profileCache.peek(key);
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

    // After a prefetch its lookups were counted there; an earlier event of the chunk may have mapped an id since.
    const prefetched = cached && input.prefetched?.spaceId === spaceId ? input.prefetched : undefined;
    const raw = new Map<IdKey, string>();
    const misses: IdKey[] = [];
    for (const id of ids) {
      const key = `${spaceId}|${id}`;
      const hit = !cached ? undefined : prefetched ? this.idCache.peek(key) : this.idCache.get(key);
      if (hit) raw.set(id, hit);
      else if (!prefetched?.unmapped.has(id)) misses.push(id);
    }
    if (misses.length > 0) for (const [id, p] of await this.store.mappings(spaceId, misses)) raw.set(id, p);

    const mapped = new Map<IdKey, string>();
    const profiles = new Map<string, Profile>();
    for (const [id, p] of raw) {
      const live = await this.live(spaceId, p, cached, !prefetched);
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
   * Counts a chunk's events on their profiles (see touch). Cached profiles go together,
   * TRANSACTION_ITEMS a transaction conditional on the cached counter; when some fail, the
   * others are sent again (TRANSACTION_ROUNDS). The uncached, merged-away and failing ones take
   * one call each, TOUCH_CONCURRENCY at once. Results in the order given.
   */
  async touchAll(touches: Array<{ spaceId: string; profileId: string; touch: Touch }>): Promise<Counted[]> {
    const results: Counted[] = new Array<Counted>(touches.length);
    const single: number[] = [];
    const together: Together[] = [];
    const laterSeen = new Set<number>();
    // Events of a user arrive on every partition, so a later one is often counted already: count only.
    const planned = (i: number, p: Profile | undefined): void => {
      if (p && p.lastSeenAt > touches[i].touch.lastSeenAt) laterSeen.add(i);
      // A merged-away profile would fail the condition and cancel the others' count with it.
      if (p && !p.mergedInto) together.push({ i, expected: p.events, laterSeen: laterSeen.has(i) });
      else single.push(i);
    };
    touches.forEach(({ spaceId, profileId }, i) => planned(i, this.profileCache.peek(`${spaceId}|${profileId}`)));
    const batches: Together[][] = [];
    for (let k = 0; k < together.length; k += TRANSACTION_ITEMS) batches.push(together.slice(k, k + TRANSACTION_ITEMS));
    await eachLimit(batches, BATCH_CONCURRENCY, async (batch) => {
      for (let round = 0; batch.length > 0; round++) {
        if (round === TRANSACTION_ROUNDS) {
          single.push(...batch.map((b) => b.i));
          return;
        }
        const failed = new Set(
          await this.store.touchTogether(batch.map(({ i, expected, laterSeen }) => ({ ...touches[i], expected, laterSeen }))),
        );
        if (failed.size === 0) {
          for (const { i, expected, laterSeen } of batch) {
            const { spaceId, profileId, touch } = touches[i];
            results[i] = { profileId, events: expected + touch.events };
            if (!laterSeen) Object.assign(results[i], { lastSeenAt: touch.lastSeenAt, lastMessageId: touch.lastMessageId });
            if (!laterSeen && touch.lastSourceId !== undefined) results[i].lastSourceId = touch.lastSourceId;
            this.counted(spaceId, results[i]);
          }
          return;
        }
        // A cancelled transaction wrote nothing: the failed profiles take one call each (a counter
        // moved by another writer is likely to move again), the others go again together.
        // (Reading the failed ones again for another transaction round measured more calls.)
        single.push(...batch.filter((_, k) => failed.has(k)).map((b) => b.i));
        batch = batch.filter((_, k) => !failed.has(k));
      }
    });
    await eachLimit(single, TOUCH_CONCURRENCY, async (i) => {
      const { spaceId, profileId, touch } = touches[i];
      results[i] = await this.touch(spaceId, profileId, touch, laterSeen.has(i));
    });
    return results;
  }

  /** A touch's counters on the cached profile, which keeps its expiry: only they are known fresh. */
  private counted(spaceId: string, c: Counted): void {
    this.profileCache.update(`${spaceId}|${c.profileId}`, (p) => ({
      ...p,
      events: c.events,
      ...(c.lastSeenAt !== undefined && { lastSeenAt: c.lastSeenAt, lastMessageId: c.lastMessageId! }),
      ...(c.lastSourceId !== undefined && { lastSourceId: c.lastSourceId }),
    }));
  }

  /**
   * Adds events to a profile's counters; if it was merged away meanwhile, to the profile it
   * leads to. Returns the profile that was counted (the event's profileId to publish) and its
   * event counter after the count.
   */
  async touch(spaceId: string, profileId: string, t: Touch, laterSeen = false): Promise<Counted> {
    let id = profileId;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        const counted = await this.store.touch(spaceId, id, t, laterSeen && id === profileId);
        this.counted(spaceId, counted);
        return counted;
      } catch (error) {
        if (!(error instanceof StaleError)) throw error;
        contention.inc();
        id = (await this.live(spaceId, id, false)).profileId;
      }
    }
    throw new RetriableError(`identity: counting events of ${profileId} lost ${MAX_ATTEMPTS} races`);
  }
}
