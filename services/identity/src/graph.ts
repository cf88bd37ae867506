// The identity graph in DynamoDB: id → profile mappings and profile records, per space. Every
// write is conditional (profile version, absent mapping, live profile), so two resolvers working
// on one user at once never lose an update: the loser of a race gets StaleError and resolves again.
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  ProvisionedThroughputExceededException,
  RequestLimitExceeded,
  ThrottlingException,
  TransactionCanceledException,
  TransactionConflictException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItem,
} from '@aws-sdk/client-dynamodb';
import { RetriableError } from '@cdp/kafka';
import { batchGet, type Timed } from './batch';
import type { IdKey } from './ids';
import { dynamoLatency, dynamoThrottles } from './metrics';
import type { ProfileView } from './plan';
import { KEY, type TableNames } from './tables';

/** A trait's value, the timestamp (ms) of the event that set it (the later event wins) and its source. */
export type Traits = Record<string, { v: unknown; t: number; s?: string }>;

/** A merge into this profile, for the Profile API's merge explanation. */
export interface MergeRecord {
  /** When it was done (ms). */
  at: number;
  /** The profiles merged in. */
  merged: string[];
  /** The event that caused it and its ids that matched more than one profile. */
  messageId: string;
  sourceId: string;
  ids: IdKey[];
}

/** An id merge protection kept off this profile (first time per reason and id). */
export interface RefusalRecord {
  at: number;
  reason: string;
  id: IdKey;
  /** value_limit: the identifier type whose limit the match would break. */
  type?: string;
  /** The profile the refused id belongs to, when it is mapped. */
  profileId?: string;
  messageId: string;
  sourceId: string;
}

/** How many refusals a profile keeps (the first ones; later are counted in metrics only). */
export const MAX_REFUSAL_RECORDS = 100;

export interface Profile extends ProfileView {
  spaceId: string;
  version: number;
  mergedInto?: string;
  mergedFrom: string[];
  traits: Traits;
  events: number;
  firstSeenAt: number;
  lastSeenAt: number;
  firstMessageId: string;
  lastMessageId: string;
  firstSourceId: string;
  lastSourceId: string;
  mergeLog: MergeRecord[];
  refusalLog: RefusalRecord[];
}

/** Where an id's mapping came from: the event that added it. */
export interface Origin {
  sourceId: string;
  messageId: string;
}

/** A mapping as stored: its profile (possibly merged away since) and the event that added it. */
export interface MappingDetail extends Origin {
  profileId: string;
  createdAt: number;
}

/** A conditional write lost a race (or the profile was merged away): read again and resolve again. */
export class StaleError extends Error {}

const S = (s: string): AttributeValue => ({ S: s });
const N = (n: number): AttributeValue => ({ N: String(n) });
const num = (a: AttributeValue | undefined): number => Number(a?.N ?? 0);
const str = (a: AttributeValue | undefined): string => a?.S ?? '';

const mappingKey = (spaceId: string, id: IdKey) => `${spaceId}|${id}`;
const profileKey = (spaceId: string, profileId: string) => `${spaceId}|${profileId}`;

function toItem(p: Profile): Record<string, AttributeValue> {
  const item: Record<string, AttributeValue> = {
    [KEY]: S(profileKey(p.spaceId, p.profileId)),
    spaceId: S(p.spaceId),
    profileId: S(p.profileId),
    createdAt: N(p.createdAt),
    version: N(p.version),
    ids: { M: Object.fromEntries(Object.entries(p.ids).map(([id, at]) => [id, N(at)])) },
    mergedFrom: { L: p.mergedFrom.map(S) },
    merges: N(p.merges),
    traits: S(JSON.stringify(p.traits)),
    events: N(p.events),
    firstSeenAt: N(p.firstSeenAt),
    lastSeenAt: N(p.lastSeenAt),
    firstMessageId: S(p.firstMessageId),
    lastMessageId: S(p.lastMessageId),
    firstSourceId: S(p.firstSourceId),
    lastSourceId: S(p.lastSourceId),
    mergeLog: S(JSON.stringify(p.mergeLog)),
    refusalLog: S(JSON.stringify(p.refusalLog)),
  };
  if (p.mergedInto) item.mergedInto = S(p.mergedInto);
  return item;
}

function fromItem(item: Record<string, AttributeValue>): Profile {
  return {
    spaceId: str(item.spaceId),
    profileId: str(item.profileId),
    createdAt: num(item.createdAt),
    version: num(item.version),
    ids: Object.fromEntries(Object.entries(item.ids?.M ?? {}).map(([id, at]) => [id, num(at)])),
    mergedFrom: (item.mergedFrom?.L ?? []).map(str),
    merges: num(item.merges),
    mergedInto: item.mergedInto?.S,
    traits: JSON.parse(str(item.traits) || '{}') as Traits,
    events: num(item.events),
    firstSeenAt: num(item.firstSeenAt),
    lastSeenAt: num(item.lastSeenAt),
    firstMessageId: str(item.firstMessageId),
    lastMessageId: str(item.lastMessageId),
    firstSourceId: str(item.firstSourceId),
    lastSourceId: str(item.lastSourceId),
    mergeLog: JSON.parse(str(item.mergeLog) || '[]') as MergeRecord[],
    refusalLog: JSON.parse(str(item.refusalLog) || '[]') as RefusalRecord[],
  };
}

const THROTTLES = [ProvisionedThroughputExceededException, ThrottlingException, RequestLimitExceeded];

/** What changes on a live profile in one structural write (attach or merge winner). */
export interface ProfileChange {
  ids: Record<IdKey, number>;
  traits: Traits;
  mergedFrom?: string[];
  merges?: number;
  /** Counters and first/last seen taken over from merged profiles. */
  events?: number;
  firstSeenAt?: number;
  lastSeenAt?: number;
  firstMessageId?: string;
  lastMessageId?: string;
  firstSourceId?: string;
  lastSourceId?: string;
  mergeLog?: MergeRecord[];
  refusalLog?: RefusalRecord[];
}

/** Event counts and last seen of one profile over a chunk of events. */
export interface Touch {
  events: number;
  lastSeenAt: number;
  lastMessageId: string;
  /** The source of the last event; absent keeps what the profile holds. */
  lastSourceId?: string;
}

/** A profile's counters after a touch; last seen only when the touch moved it. */
export interface Counted {
  profileId: string;
  events: number;
  lastSeenAt?: number;
  lastMessageId?: string;
  lastSourceId?: string;
}

export class GraphStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: TableNames,
  ) {}

  private async call<T>(op: string, run: () => Promise<T>): Promise<T> {
    const stop = dynamoLatency.labels(op).startTimer();
    try {
      return await run();
    } catch (error) {
      if (THROTTLES.some((t) => error instanceof t)) {
        dynamoThrottles.labels(op).inc();
        throw new RetriableError(`DynamoDB throttled ${op}`, { cause: error });
      }
      if (error instanceof ConditionalCheckFailedException) throw new StaleError(`${op}: condition failed`, { cause: error });
      // A write to an item a transaction (another partition's counters) holds: read again and go again.
      if (error instanceof TransactionConflictException) throw new StaleError(`${op}: conflicts with a transaction`, { cause: error });
      if (error instanceof TransactionCanceledException) {
        const reasons = (error.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
        if (reasons.some((r) => r === 'ThrottlingError' || r === 'ProvisionedThroughputExceeded')) {
          dynamoThrottles.labels(op).inc();
          throw new RetriableError(`DynamoDB throttled ${op}`, { cause: error });
        }
        throw new StaleError(`${op}: transaction cancelled (${reasons.join(', ')})`, { cause: error });
      }
      throw error;
    } finally {
      stop();
    }
  }

  private readonly timed: Timed = (op, send) => this.call(op, send);

  private mappingItems(spaceId: string, ids: IdKey[], consistent: boolean): Promise<Record<string, AttributeValue>[]> {
    const keys = [...new Set(ids)].map((id) => ({ [KEY]: S(mappingKey(spaceId, id)) }));
    return batchGet(this.client, this.timed, 'batch_get', this.tables.ids, keys, { consistent });
  }

  /** The profile each id maps to (ids without a mapping are absent). */
  async mappings(spaceId: string, ids: IdKey[]): Promise<Map<IdKey, string>> {
    const prefix = `${spaceId}|`;
    const items = await this.mappingItems(spaceId, ids, true);
    return new Map(items.map((item) => [str(item[KEY]).slice(prefix.length), str(item.profileId)]));
  }

  /** The stored mappings of ids (ids without one are absent): profile and the event that added each. */
  async mappingDetails(spaceId: string, ids: IdKey[]): Promise<Map<IdKey, MappingDetail>> {
    const prefix = `${spaceId}|`;
    const items = await this.mappingItems(spaceId, ids, false);
    return new Map(
      items.map((item) => [
        str(item[KEY]).slice(prefix.length),
        { profileId: str(item.profileId), createdAt: num(item.createdAt), sourceId: str(item.sourceId), messageId: str(item.messageId) },
      ]),
    );
  }

  async profile(spaceId: string, profileId: string): Promise<Profile | undefined> {
    const answer = await this.call('get_profile', () =>
      this.client.send(
        new GetItemCommand({ TableName: this.tables.profiles, Key: { [KEY]: S(profileKey(spaceId, profileId)) }, ConsistentRead: true }),
      ),
    );
    return answer.Item ? fromItem(answer.Item) : undefined;
  }

  /** The profiles that exist of `profileIds`, 100 a call. */
  async profiles(spaceId: string, profileIds: string[]): Promise<Profile[]> {
    const keys = [...new Set(profileIds)].map((id) => ({ [KEY]: S(profileKey(spaceId, id)) }));
    return (await batchGet(this.client, this.timed, 'batch_get_profiles', this.tables.profiles, keys, { consistent: true })).map(fromItem);
  }

  private putMappings(spaceId: string, profileId: string, ids: IdKey[], now: number, origin: Origin): TransactWriteItem[] {
    return ids.map((id) => ({
      Put: {
        TableName: this.tables.ids,
        Item: {
          [KEY]: S(mappingKey(spaceId, id)),
          profileId: S(profileId),
          createdAt: N(now),
          sourceId: S(origin.sourceId),
          messageId: S(origin.messageId),
        },
        ConditionExpression: 'attribute_not_exists(#k)',
        ExpressionAttributeNames: { '#k': KEY },
      },
    }));
  }

  /** The new profile and its mappings, all or nothing; StaleError when one of the ids got mapped meanwhile. */
  async create(profile: Profile): Promise<void> {
    const ids = Object.keys(profile.ids);
    await this.call('create', () =>
      this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tables.profiles,
                Item: toItem(profile),
                ConditionExpression: 'attribute_not_exists(#k)',
                ExpressionAttributeNames: { '#k': KEY },
              },
            },
            ...this.putMappings(profile.spaceId, profile.profileId, ids, profile.createdAt, {
              sourceId: profile.firstSourceId,
              messageId: profile.firstMessageId,
            }),
          ],
        }),
      ),
    );
  }

  /** Update of a live profile at the version (and event count) it was read at. */
  private updateProfile(p: Profile, change: ProfileChange): TransactWriteItem {
    const values: Record<string, AttributeValue> = {
      ':v': N(p.version),
      ':next': N(p.version + 1),
      ':e': N(p.events),
      ':ids': { M: Object.fromEntries(Object.entries(change.ids).map(([id, at]) => [id, N(at)])) },
      ':traits': S(JSON.stringify(change.traits)),
    };
    const sets = ['version = :next', 'ids = :ids', 'traits = :traits'];
    const optional: Array<[string, AttributeValue | undefined]> = [
      ['mergedFrom', change.mergedFrom && { L: change.mergedFrom.map(S) }],
      ['merges', change.merges !== undefined ? N(change.merges) : undefined],
      ['events', change.events !== undefined ? N(change.events) : undefined],
      ['firstSeenAt', change.firstSeenAt !== undefined ? N(change.firstSeenAt) : undefined],
      ['lastSeenAt', change.lastSeenAt !== undefined ? N(change.lastSeenAt) : undefined],
      ['firstMessageId', change.firstMessageId !== undefined ? S(change.firstMessageId) : undefined],
      ['lastMessageId', change.lastMessageId !== undefined ? S(change.lastMessageId) : undefined],
      ['firstSourceId', change.firstSourceId !== undefined ? S(change.firstSourceId) : undefined],
      ['lastSourceId', change.lastSourceId !== undefined ? S(change.lastSourceId) : undefined],
      ['mergeLog', change.mergeLog !== undefined ? S(JSON.stringify(change.mergeLog)) : undefined],
      ['refusalLog', change.refusalLog !== undefined ? S(JSON.stringify(change.refusalLog)) : undefined],
    ];
    for (const [name, value] of optional) {
      if (value === undefined) continue;
      values[`:${name}`] = value;
      sets.push(`${name} = :${name}`);
    }
    return {
      Update: {
        TableName: this.tables.profiles,
        Key: { [KEY]: S(profileKey(p.spaceId, p.profileId)) },
        UpdateExpression: `SET ${sets.join(', ')}`,
        // The event count is in the condition: counters change without a version bump (touch).
        ConditionExpression: 'version = :v AND events = :e AND attribute_not_exists(mergedInto)',
        ExpressionAttributeValues: values,
      },
    };
  }

  /** New ids and traits on a live profile, with the new mappings. */
  async attach(p: Profile, change: ProfileChange, newIds: IdKey[], now: number, origin: Origin): Promise<void> {
    await this.call('attach', () =>
      this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [this.updateProfile(p, change), ...this.putMappings(p.spaceId, p.profileId, newIds, now, origin)],
        }),
      ),
    );
  }

  /**
   * Losers marked `mergedInto` the winner and the winner's new state, in one transaction (so no
   * reader finds no profile and no update of a loser is lost); then the losers' mappings are
   * repointed (readers follow `mergedInto` until then).
   */
  async merge(winner: Profile, losers: Profile[], change: ProfileChange, newIds: IdKey[], now: number, origin: Origin): Promise<void> {
    const markLosers: TransactWriteItem[] = losers.map((l) => ({
      Update: {
        TableName: this.tables.profiles,
        Key: { [KEY]: S(profileKey(l.spaceId, l.profileId)) },
        UpdateExpression: 'SET mergedInto = :w, version = :next',
        ConditionExpression: 'version = :v AND events = :e AND attribute_not_exists(mergedInto)',
        ExpressionAttributeValues: { ':w': S(winner.profileId), ':v': N(l.version), ':next': N(l.version + 1), ':e': N(l.events) },
      },
    }));
    await this.call('merge', () =>
      this.client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            ...markLosers,
            this.updateProfile(winner, change),
            ...this.putMappings(winner.spaceId, winner.profileId, newIds, now, origin),
          ],
        }),
      ),
    );
    for (const l of losers) await this.repoint(l, winner.profileId);
  }

  /** The loser's mappings to the winner; a mapping already moved on (a later merge) is left alone. */
  private async repoint(loser: Profile, winnerId: string): Promise<void> {
    for (const id of Object.keys(loser.ids)) {
      try {
        await this.call('repoint', () =>
          this.client.send(
            new UpdateItemCommand({
              TableName: this.tables.ids,
              Key: { [KEY]: S(mappingKey(loser.spaceId, id)) },
              UpdateExpression: 'SET profileId = :w',
              ConditionExpression: 'profileId = :l',
              ExpressionAttributeValues: { ':w': S(winnerId), ':l': S(loser.profileId) },
            }),
          ),
        );
      } catch (error) {
        if (!(error instanceof StaleError)) throw error;
      }
    }
  }

  /**
   * The counter update of a touch: events added, and last seen moved unless `countOnly` (the
   * profile has seen a later event). `condition` is added to the update's own.
   */
  private counterUpdate(
    spaceId: string,
    profileId: string,
    t: Touch,
    countOnly: boolean,
    condition = '',
    extra: Record<string, AttributeValue> = {},
  ) {
    const values: Record<string, AttributeValue> = { ':n': N(t.events), ...extra };
    let update = 'ADD events :n';
    let cond = 'attribute_exists(#k) AND attribute_not_exists(mergedInto)';
    if (!countOnly) {
      Object.assign(values, { ':t': N(t.lastSeenAt), ':m': S(t.lastMessageId) });
      update += ' SET lastSeenAt = :t, lastMessageId = :m';
      if (t.lastSourceId !== undefined) {
        values[':s'] = S(t.lastSourceId);
        update += ', lastSourceId = :s';
      }
      cond += ' AND lastSeenAt <= :t';
    }
    return {
      TableName: this.tables.profiles,
      Key: { [KEY]: S(profileKey(spaceId, profileId)) },
      UpdateExpression: update,
      ConditionExpression: cond + condition,
      ExpressionAttributeNames: { '#k': KEY },
      ExpressionAttributeValues: values,
    };
  }

  /**
   * Adds a chunk's events to a live profile's counters (no version bump: counters never conflict
   * with structural writes). Returns the counters after; StaleError when the profile was merged
   * away meanwhile. Only the changed attributes come back (not the whole profile). `laterSeen`:
   * the caller knows the profile has seen a later event (counts only, one call).
   */
  async touch(spaceId: string, profileId: string, t: Touch, laterSeen = false): Promise<Counted> {
    const counted = (a: Record<string, AttributeValue> | undefined): Counted => ({
      profileId,
      events: num(a?.events),
      ...(a?.lastSeenAt && { lastSeenAt: num(a.lastSeenAt), lastMessageId: str(a.lastMessageId) }),
      ...(a?.lastSourceId && { lastSourceId: str(a.lastSourceId) }),
    });
    const send = (countOnly: boolean) =>
      this.call('touch', () =>
        this.client.send(new UpdateItemCommand({ ...this.counterUpdate(spaceId, profileId, t, countOnly), ReturnValues: 'UPDATED_NEW' })),
      );
    if (laterSeen) return counted((await send(true)).Attributes);
    try {
      return counted((await send(false)).Attributes);
    } catch (error) {
      if (!(error instanceof StaleError)) throw error;
      // Either merged away (stale) or a later event was seen already: count only.
      return counted((await send(true)).Attributes);
    }
  }

  /**
   * Several profiles' touches in one transaction, each at the event counter its caller expects
   * (a transaction returns no values: the condition is what makes the counter after known,
   * `expected + events`, and the recent-event slots disjoint from any other writer's). One call
   * for up to 100 profiles instead of one each. Nothing is written when an item's condition
   * fails (another writer counted it, merged away, a later event seen already unless
   * `laterSeen`, which counts only): returns the
   * indexes of the items that failed; the others may be sent again.
   */
  async touchTogether(
    items: Array<{ spaceId: string; profileId: string; touch: Touch; expected: number; laterSeen: boolean }>,
  ): Promise<number[]> {
    try {
      await this.call('touch_together', () =>
        this.client.send(
          new TransactWriteItemsCommand({
            TransactItems: items.map(({ spaceId, profileId, touch, expected, laterSeen }) => ({
              Update: this.counterUpdate(spaceId, profileId, touch, laterSeen, ' AND events = :e', { ':e': N(expected) }),
            })),
          }),
        ),
      );
      return [];
    } catch (error) {
      if (!(error instanceof StaleError)) throw error;
      const reasons = error.cause instanceof TransactionCanceledException ? (error.cause.CancellationReasons ?? []) : [];
      const failed = items.flatMap((_, i) => ((reasons[i]?.Code ?? 'None') === 'None' ? [] : [i]));
      // No reason per item (should not happen): none of them can be trusted to pass.
      return failed.length > 0 ? failed : items.map((_, i) => i);
    }
  }
}
