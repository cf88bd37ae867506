import { DeleteTableCommand, DescribeTimeToLiveCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SegmentMessage } from '@cdp/events';
import { currentRunId, LOCAL_AWS_ENV, requireEnv, uniqueSuffix } from '@cdp/testkit';
import { GraphStore } from './graph';
import { RecentEvents, recentEventBody, type RecentEventBody } from './recent';
import { Resolver } from './resolver';
import { checkTables, dynamoClient, ensureTables, KEY, SORT_KEY, tableNames, TTL_ATTRIBUTE, type TableNames } from './tables';
import { testRules } from './testing/rules';

const DAY = 86_400_000;
let client: DynamoDBClient;
let tables: TableNames;
const prefix = `t${currentRunId()}-${uniqueSuffix()}-`;

beforeAll(async () => {
  client = dynamoClient({ AWS_REGION: LOCAL_AWS_ENV.AWS_REGION, DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT') });
  tables = tableNames(prefix);
  await ensureTables(client, tables);
});

afterAll(async () => {
  for (const TableName of Object.values(tables)) await client.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
  client.destroy();
});

let n = 0;
function body(at: number, m: Partial<SegmentMessage> = {}): RecentEventBody {
  const message = { type: 'track', event: 'Viewed', messageId: `m${++n}`, properties: { n }, ...m } as SegmentMessage;
  return recentEventBody(message, 'web', ['user_id:u'], at);
}

describe('recent events per profile (DynamoDB Local)', () => {
  it('the events table has a slot range key and Time to Live on expiresAt', async () => {
    expect(await checkTables(client, tables)).toEqual([]);
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tables.events }));
    expect(ttl.TimeToLiveDescription).toMatchObject({ TimeToLiveStatus: 'ENABLED', AttributeName: TTL_ATTRIBUTE });
  });

  it('keeps at most the ring size per profile: the newest events, each with its expiry 14 days after its time', async () => {
    const recent = new RecentEvents(client, tables, { size: 10, ttlMs: 14 * DAY });
    const now = Date.now();
    const space = `s-${uniqueSuffix()}`;
    // 3 chunks of 9 events each: 27 counted, slots wrap around twice.
    const all: RecentEventBody[] = [];
    let counter = 0;
    for (let chunk = 0; chunk < 3; chunk++) {
      const events = Array.from({ length: 9 }, (_, i) => body(now - DAY + (chunk * 9 + i) * 1000));
      await recent.record([{ spaceId: space, profileId: 'p1', counterBefore: counter, events }], now);
      counter += events.length;
      all.push(...events);
    }
    const kept = await recent.summaries(space, ['p1'], now);
    expect(kept.map((s) => s.messageId).sort()).toEqual(
      all
        .slice(-10)
        .map((e) => e.message_id)
        .sort(),
    );
    const bodies = await recent.bodies(space, kept);
    expect(bodies.map((b) => b.message_id).sort()).toEqual(kept.map((s) => s.messageId).sort());
    expect(bodies[0]).toMatchObject({ type: 'track', event: 'Viewed', source_id: 'web', external_ids: [{ type: 'user_id', id: 'u' }] });
  });

  it('does not keep an event past its lookback, and never answers an expired item DynamoDB has not deleted yet', async () => {
    const recent = new RecentEvents(client, tables, { size: 100, ttlMs: 14 * DAY });
    const now = Date.now();
    const space = `s-${uniqueSuffix()}`;
    const stored = await recent.record(
      [{ spaceId: space, profileId: 'p1', counterBefore: 0, events: [body(now - 15 * DAY), body(now - 13 * DAY)] }],
      now,
    );
    expect(stored).toBe(1);
    // An item whose TTL passed a minute ago (as DynamoDB keeps them for up to days).
    await client.send(
      new PutItemCommand({
        TableName: tables.events,
        Item: {
          [KEY]: { S: `${space}|p1` },
          [SORT_KEY]: { N: '50' },
          [TTL_ATTRIBUTE]: { N: String(Math.floor(now / 1000) - 60) },
          at: { N: String(now - 14 * DAY - 60_000) },
          messageId: { S: 'expired' },
          type: { S: 'track' },
          name: { S: 'Old' },
          body: { S: JSON.stringify(body(now - 14 * DAY - 60_000)) },
        },
      }),
    );
    const kept = await recent.summaries(space, ['p1'], now);
    expect(kept.map((s) => s.at)).toEqual([now - 13 * DAY]);
  });

  it('counts taken by two resolvers at once (one at a time and in transactions at the cached counter) give disjoint slots: every event kept once', async () => {
    const store = new GraphStore(client, tables);
    const recent = new RecentEvents(client, tables, { size: 1_000, ttlMs: 14 * DAY });
    const space = `s-${uniqueSuffix()}`;
    const rules = testRules();
    const first = new Resolver(store, { cacheTtlMs: 5_000, cacheEntries: 100 });
    const created = await first.resolve({
      spaceId: space,
      rules,
      message: { type: 'track', event: 'x', messageId: 'c', userId: 'u' } as SegmentMessage,
      timestamp: Date.now(),
    });
    const resolvers = [first, new Resolver(store, { cacheTtlMs: 5_000, cacheEntries: 100 })];
    // Both have the profile cached: their transactions expect counters the other moves meanwhile.
    await resolvers[1].resolve({
      spaceId: space,
      rules,
      message: { type: 'track', event: 'x', messageId: 'd', userId: 'u' } as SegmentMessage,
      timestamp: Date.now(),
    });
    const written: string[] = [];
    await Promise.all(
      resolvers.map(async (r) => {
        for (let chunk = 0; chunk < 10; chunk++) {
          const events = [body(Date.now()), body(Date.now()), body(Date.now())];
          const touch = { events: events.length, lastSeenAt: Date.now(), lastMessageId: 'x' };
          const p =
            chunk % 2 === 0
              ? (await r.touchAll([{ spaceId: space, profileId: created.profileId!, touch }]))[0]
              : await r.touch(space, created.profileId!, touch);
          await recent.record([{ spaceId: space, profileId: p.profileId, counterBefore: p.events - events.length, events }]);
          written.push(...events.map((e) => e.message_id));
        }
      }),
    );
    const kept = await recent.summaries(space, [created.profileId!]);
    expect(kept.map((s) => s.messageId).sort()).toEqual(written.sort());
    expect(await recent.deleteProfile(space, created.profileId!)).toBe(60);
    expect(await recent.summaries(space, [created.profileId!])).toEqual([]);
  });
});
