// Recent events per profile, for the Profile API's `events` route: a ring of `size` slots per
// profile in the events table (slot = the profile's event counter modulo the ring's size, so a
// profile never holds more than `size` items), each item expiring by DynamoDB's Time to Live
// (`expiresAt`, epoch seconds, the event's time plus the lookback). Expired items DynamoDB has
// not deleted yet are filtered out when read.
import { QueryCommand, type AttributeValue, type DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import type { SegmentMessage } from '@cdp/events';
import { batchGet, batchWrite, type Timed } from './batch';
import { dynamoLatency } from './metrics';
import { KEY, SORT_KEY, TTL_ATTRIBUTE, type TableNames } from './tables';

/** One event as the Profile API answers it (segment-compat.md §3.4b). */
export interface RecentEventBody {
  external_ids: Array<{ collection: 'users'; type: string; id: string; source_id: string; encoding: 'none' }>;
  context: Record<string, unknown>;
  type: string;
  message_id: string;
  source_id: string;
  timestamp: string;
  properties: Record<string, unknown>;
  event?: string;
  name?: string;
  traits?: Record<string, unknown>;
  related: Record<string, unknown> | null;
}

/** What a listing needs of an item before reading its body. */
export interface RecentEventSummary {
  profileId: string;
  slot: number;
  /** Event time, ms. */
  at: number;
  messageId: string;
  type: string;
  /** `event` of a track, `name` of a page or screen, else ''. */
  name: string;
}

/** One profile's events of a chunk and its event counter before they were counted. */
export interface RecentGroup {
  spaceId: string;
  profileId: string;
  counterBefore: number;
  events: RecentEventBody[];
}

export interface RecentEventsOptions {
  /** Slots per profile (the most recent events kept). */
  size: number;
  /** How long an event is kept after its time. */
  ttlMs: number;
}

const S = (s: string): AttributeValue => ({ S: s });
const N = (n: number): AttributeValue => ({ N: String(n) });
const profileKey = (spaceId: string, profileId: string) => `${spaceId}|${profileId}`;

/** The Profile API's form of an event; `ids` are the event's external ids (`type:value`). */
export function recentEventBody(message: SegmentMessage, sourceId: string, ids: string[], at: number): RecentEventBody {
  const m = message as SegmentMessage & Record<string, unknown>;
  const body: RecentEventBody = {
    external_ids: ids.map((key) => {
      const i = key.indexOf(':');
      return { collection: 'users', type: key.slice(0, i), id: key.slice(i + 1), source_id: sourceId, encoding: 'none' };
    }),
    context: (m.context as Record<string, unknown> | undefined) ?? {},
    type: message.type,
    message_id: message.messageId,
    source_id: sourceId,
    timestamp: new Date(at).toISOString(),
    properties: (m.properties as Record<string, unknown> | undefined) ?? {},
    related: null,
  };
  if (typeof m.event === 'string') body.event = m.event;
  if (typeof m.name === 'string') body.name = m.name;
  if (message.type === 'identify' && m.traits) body.traits = m.traits as Record<string, unknown>;
  return body;
}

export class RecentEvents {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tables: Pick<TableNames, 'events'>,
    readonly options: RecentEventsOptions,
  ) {}

  private readonly timed: Timed = async (op, send) => {
    const stop = dynamoLatency.labels(op).startTimer();
    try {
      return await send();
    } finally {
      stop();
    }
  };

  /**
   * Stores a chunk's events, per profile oldest first, in the slots after `counterBefore` (the
   * profile's event counter before they were counted; counters are added atomically, so two
   * writers never get the same slots), 25 items a call across profiles. Events already past
   * their lookback are not stored. Returns how many were written.
   */
  async record(groups: RecentGroup[], now = Date.now()): Promise<number> {
    const requests: WriteRequest[] = [];
    for (const { spaceId, profileId, counterBefore, events } of groups) {
      const pk = S(profileKey(spaceId, profileId));
      const bySlot = new Map<number, WriteRequest>();
      events.forEach((body, i) => {
        const at = Date.parse(body.timestamp);
        const expiresAt = Math.floor((at + this.options.ttlMs) / 1000);
        if (expiresAt * 1000 <= now) return;
        const slot = (counterBefore + i) % this.options.size;
        // More events than slots in one chunk: the later one takes the slot (one write per key per batch).
        bySlot.set(slot, {
          PutRequest: {
            Item: {
              [KEY]: pk,
              [SORT_KEY]: N(slot),
              [TTL_ATTRIBUTE]: N(expiresAt),
              at: N(at),
              messageId: S(body.message_id),
              type: S(body.type),
              name: S(body.event ?? body.name ?? ''),
              body: S(JSON.stringify(body)),
            },
          },
        });
      });
      requests.push(...bySlot.values());
    }
    await batchWrite(this.client, this.timed, 'events_write', this.tables.events, requests);
    return requests.length;
  }

  /** Every item of a profile's partition that passes the filter, with the attributes projected. */
  private async queryAll(
    pk: string,
    projection: string,
    names: Record<string, string>,
    filter?: { expression: string; values: Record<string, AttributeValue> },
  ): Promise<Record<string, AttributeValue>[]> {
    const items: Record<string, AttributeValue>[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.timed('events_query', () =>
        this.client.send(
          new QueryCommand({
            TableName: this.tables.events,
            KeyConditionExpression: '#pk = :pk',
            FilterExpression: filter?.expression,
            ProjectionExpression: projection,
            ExpressionAttributeNames: { '#pk': KEY, ...names },
            ExpressionAttributeValues: { ':pk': S(pk), ...filter?.values },
            ExclusiveStartKey: start,
          }),
        ),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** Every unexpired event of the profiles (summaries only), duplicates of a message id (re-reads after a crash) once. */
  async summaries(spaceId: string, profileIds: string[], now = Date.now()): Promise<RecentEventSummary[]> {
    const seen = new Set<string>();
    const out: RecentEventSummary[] = [];
    for (const profileId of profileIds) {
      const items = await this.queryAll(
        profileKey(spaceId, profileId),
        '#slot, #at, messageId, #type, #name',
        { '#ttl': TTL_ATTRIBUTE, '#slot': SORT_KEY, '#at': 'at', '#type': 'type', '#name': 'name' },
        { expression: '#ttl > :now', values: { ':now': N(Math.floor(now / 1000)) } },
      );
      for (const item of items) {
        const messageId = item.messageId?.S ?? '';
        if (seen.has(messageId)) continue;
        seen.add(messageId);
        out.push({
          profileId,
          slot: Number(item[SORT_KEY].N),
          at: Number(item.at?.N ?? 0),
          messageId,
          type: item.type?.S ?? '',
          name: item.name?.S ?? '',
        });
      }
    }
    return out;
  }

  /** The bodies of listed events, in the order given. */
  async bodies(spaceId: string, summaries: RecentEventSummary[]): Promise<RecentEventBody[]> {
    const found = new Map<string, RecentEventBody>();
    const keyOf = (profileId: string, slot: number) => `${profileId}#${slot}`;
    const keys = summaries.map((s) => ({ [KEY]: S(profileKey(spaceId, s.profileId)), [SORT_KEY]: N(s.slot) }));
    for (const item of await batchGet(this.client, this.timed, 'events_get', this.tables.events, keys)) {
      const profileId = item[KEY].S!.slice(spaceId.length + 1);
      found.set(keyOf(profileId, Number(item[SORT_KEY].N)), JSON.parse(item.body.S!) as RecentEventBody);
    }
    // A slot rewritten meanwhile by a newer event is left out rather than shown in the wrong place.
    return summaries.flatMap((s) => {
      const body = found.get(keyOf(s.profileId, s.slot));
      return body && body.message_id === s.messageId ? [body] : [];
    });
  }

  /** Deletes every event of a profile (a regulation's deletion); returns how many. */
  async deleteProfile(spaceId: string, profileId: string): Promise<number> {
    const pk = S(profileKey(spaceId, profileId));
    const slots = (await this.queryAll(pk.S!, '#slot', { '#slot': SORT_KEY })).map((item) => Number(item[SORT_KEY].N));
    await batchWrite(
      this.client,
      this.timed,
      'events_delete',
      this.tables.events,
      slots.map((slot) => ({ DeleteRequest: { Key: { [KEY]: pk, [SORT_KEY]: N(slot) } } })),
    );
    return slots.length;
  }
}
