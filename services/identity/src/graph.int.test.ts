import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SegmentMessage } from '@cdp/events';
import { currentRunId, LOCAL_AWS_ENV, requireEnv, uniqueSuffix } from '@cdp/testkit';
import { GraphStore } from './graph';
import { Resolver, type ResolveInput } from './resolver';
import { dynamoClient, ensureTables, tableNames, type TableNames } from './tables';
import { dumpGraph, groupsOf } from './testing/graph';
import { testRules } from './testing/rules';

const run = promisify(execFile);
const TABLES_CLI = path.join(__dirname, '..', 'dist', 'tables-cli.js');

let client: DynamoDBClient;
let tables: TableNames;
let store: GraphStore;
const prefix = `t${currentRunId()}-${uniqueSuffix()}-`;

beforeAll(async () => {
  client = dynamoClient({ AWS_REGION: LOCAL_AWS_ENV.AWS_REGION, DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT') });
  tables = tableNames(prefix);
  store = new GraphStore(client, tables);
});

afterAll(async () => {
  for (const TableName of Object.values(tables)) await client.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
  client.destroy();
});

let n = 0;
const message = (m: Partial<SegmentMessage>): SegmentMessage =>
  ({ type: 'track', event: 'Viewed', messageId: `m${++n}`, ...m }) as SegmentMessage;
const newSpace = () => `space-${uniqueSuffix()}`;
const resolverOf = () => new Resolver(store, { cacheTtlMs: 5_000, cacheEntries: 1_000 });

async function resolveAll(spaceId: string, messages: Partial<SegmentMessage>[], rules = testRules(), resolver = resolverOf()) {
  const out = [];
  for (const [i, m] of messages.entries()) out.push(await resolver.resolve({ spaceId, rules, message: message(m), timestamp: 1_000 + i }));
  return out;
}

async function groups(spaceId: string): Promise<string[][]> {
  const { groups: g, problems } = groupsOf(await dumpGraph(client, tables, spaceId));
  expect(problems).toEqual([]);
  return g;
}

describe('identity-tables', () => {
  const cli = async (command: string) =>
    run(process.execPath, [TABLES_CLI, command], {
      env: { PATH: process.env.PATH, ...LOCAL_AWS_ENV, DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT'), IDENTITY_TABLE_PREFIX: prefix },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('check names missing tables; create makes them on demand, twice without harm; check passes', async () => {
    const before = await cli('check');
    expect(before.code).toBe(1);
    expect(before.stderr).toContain(`${tables.ids}: missing`);
    expect(before.stderr).toContain(`${tables.profiles}: missing`);
    expect(before.stderr).toContain(`${tables.events}: missing`);
    const first = await cli('create');
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toContain(`created ${tables.ids}`);
    const again = await cli('create');
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain('created');
    expect((await cli('check')).code).toBe(0);
    expect(await ensureTables(client, tables)).toEqual({ created: [], problems: [] });
  });
});

describe('resolution on DynamoDB Local', () => {
  beforeAll(() => ensureTables(client, tables));

  it('anonymous then identified: one profile', async () => {
    const space = newSpace();
    const [a, b, c] = await resolveAll(space, [
      { anonymousId: 'a1' },
      { type: 'identify', anonymousId: 'a1', userId: 'u1', traits: { email: 'u1@x.io' } },
      { userId: 'u1' },
    ]);
    expect(a.outcome).toBe('created');
    expect(b).toMatchObject({ profileId: a.profileId, outcome: 'attached' });
    expect(c).toMatchObject({ profileId: a.profileId, outcome: 'known' });
    expect(await groups(space)).toEqual([['anonymous_id:a1', 'email:u1@x.io', 'user_id:u1']]);
  });

  it('one user on two devices: one profile with two anonymous ids (a merge)', async () => {
    const space = newSpace();
    const r = await resolveAll(space, [
      { anonymousId: 'phone' },
      { anonymousId: 'laptop' },
      { type: 'identify', userId: 'u', anonymousId: 'phone' },
      { type: 'identify', userId: 'u', anonymousId: 'laptop' },
    ]);
    expect(r[0].profileId).not.toBe(r[1].profileId);
    expect(r[3]).toMatchObject({ outcome: 'merged', profileId: r[0].profileId });
    expect(await groups(space)).toEqual([['anonymous_id:laptop', 'anonymous_id:phone', 'user_id:u']]);
    const dump = await dumpGraph(client, tables, space);
    expect(dump.profiles.get(r[1].profileId!)).toMatchObject({ mergedInto: r[0].profileId });
    expect(dump.profiles.get(r[0].profileId!)).toMatchObject({ merges: 1 });
  });

  it('a shared anonymousId used by two userIds: merge refused, two profiles', async () => {
    const space = newSpace();
    const r = await resolveAll(space, [
      { type: 'identify', userId: 'alice', anonymousId: 'kiosk' },
      { type: 'identify', userId: 'bob', anonymousId: 'kiosk' },
    ]);
    expect(r[1]).toMatchObject({ outcome: 'created', refusals: [{ reason: 'value_limit', id: 'anonymous_id:kiosk', type: 'user_id' }] });
    expect(await groups(space)).toEqual([['anonymous_id:kiosk', 'user_id:alice'], ['user_id:bob']]);
  });

  it('blocked values never become ids', async () => {
    const space = newSpace();
    const r = await resolveAll(space, [
      { userId: '0', anonymousId: 'null' },
      { userId: '-1', anonymousId: 'a' },
      { type: 'identify', userId: 'anonymous', anonymousId: 'b', traits: { email: 'undefined' } },
    ]);
    expect(r[0]).toEqual({ outcome: 'unresolved', refusals: [], ids: [] });
    expect(await groups(space)).toEqual([['anonymous_id:a'], ['anonymous_id:b']]);
  });

  it('a sixth email exceeds the limit: dropped, the event still resolves to the profile', async () => {
    const space = newSpace();
    const emails = [1, 2, 3, 4, 5, 6].map((i) => ({ type: 'identify' as const, userId: 'u', traits: { email: `e${i}@x.io` } }));
    const r = await resolveAll(space, emails);
    expect(new Set(r.map((x) => x.profileId)).size).toBe(1);
    expect(r[5].refusals).toEqual([{ reason: 'value_limit', id: 'email:e6@x.io', type: 'email' }]);
    expect(await groups(space)).toEqual([
      ['email:e1@x.io', 'email:e2@x.io', 'email:e3@x.io', 'email:e4@x.io', 'email:e5@x.io', 'user_id:u'],
    ]);
  });

  it('caps reached: no more merges or mappings, events still resolve', async () => {
    const space = newSpace();
    const rules = testRules({ maxMergesPerProfile: 1, maxMappingsPerProfile: 3 });
    const r = await resolveAll(
      space,
      [
        { anonymousId: 'a1' },
        { anonymousId: 'a2' },
        { anonymousId: 'a3' },
        { userId: 'u', anonymousId: 'a1' },
        { userId: 'u', anonymousId: 'a2' },
        { userId: 'u', anonymousId: 'a3' },
        { userId: 'u', anonymousId: 'a4' },
      ],
      rules,
    );
    expect(r[4].outcome).toBe('merged');
    expect(r[5]).toMatchObject({ outcome: 'known', profileId: r[0].profileId, refusals: [{ reason: 'merge_cap', id: 'anonymous_id:a3' }] });
    expect(r[6]).toMatchObject({
      outcome: 'known',
      profileId: r[0].profileId,
      refusals: [{ reason: 'mapping_cap', id: 'anonymous_id:a4' }],
    });
    expect(await groups(space)).toEqual([['anonymous_id:a1', 'anonymous_id:a2', 'user_id:u'], ['anonymous_id:a3']]);
  });

  it('a three-way merge chain ends in one live profile; every mapping leads to it', async () => {
    const space = newSpace();
    const r = await resolveAll(space, [
      { anonymousId: 'a1' },
      { anonymousId: 'a2' },
      { type: 'identify', anonymousId: 'a3', traits: { email: 'e@x.io' } },
      { type: 'alias', previousId: 'a2', userId: 'u' },
      { userId: 'u', anonymousId: 'a1' },
      { type: 'identify', userId: 'u', traits: { email: 'e@x.io' } },
    ]);
    expect(r.slice(4).map((x) => x.outcome)).toEqual(['merged', 'merged']);
    expect(await groups(space)).toEqual([['anonymous_id:a1', 'anonymous_id:a2', 'anonymous_id:a3', 'email:e@x.io', 'user_id:u']]);
    const dump = await dumpGraph(client, tables, space);
    const live = [...dump.profiles.entries()].filter(([, p]) => !p.mergedInto);
    expect(live).toHaveLength(1);
    expect(live[0][1].merges).toBe(2);
  });

  it('traits: the later event wins, whatever the order they arrive in', async () => {
    const space = newSpace();
    const resolver = resolverOf();
    const rules = testRules();
    await resolver.resolve({
      spaceId: space,
      rules,
      message: message({ type: 'identify', userId: 'u', traits: { plan: 'pro' } }),
      timestamp: 2_000,
    });
    await resolver.resolve({
      spaceId: space,
      rules,
      message: message({ type: 'identify', userId: 'u', traits: { plan: 'free', name: 'U' } }),
      timestamp: 1_000,
    });
    const profile = [...(await dumpGraph(client, tables, space)).profiles.values()][0];
    expect(profile.traits).toEqual({ plan: { v: 'pro', t: 2_000 }, name: { v: 'U', t: 1_000 } });
  });

  it('where no rule fires, any order of the same events gives the same grouping', async () => {
    const events: Partial<SegmentMessage>[] = [
      { anonymousId: 'p1' },
      { anonymousId: 'p2' },
      { type: 'identify', userId: 'ann', anonymousId: 'p1' },
      { type: 'identify', userId: 'ann', anonymousId: 'p2', traits: { email: 'ann@x.io' } },
      { anonymousId: 'q1' },
      { type: 'alias', userId: 'bo', previousId: 'q1' },
      { type: 'identify', anonymousId: 'q2', traits: { email: 'bo@x.io' } },
      { type: 'identify', userId: 'bo', traits: { email: 'bo@x.io' } },
    ];
    const expected = [
      ['anonymous_id:p1', 'anonymous_id:p2', 'email:ann@x.io', 'user_id:ann'],
      ['anonymous_id:q1', 'anonymous_id:q2', 'email:bo@x.io', 'user_id:bo'],
    ];
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 4; round++) {
      const order = [...events].sort(() => random() - 0.5);
      const space = newSpace();
      await resolveAll(space, order);
      expect(await groups(space)).toEqual(expected);
    }
  });

  it('where a rule fires the order decides, as stated: the shared kiosk id stays with the first user', async () => {
    const aliceFirst = newSpace();
    await resolveAll(aliceFirst, [
      { userId: 'alice', anonymousId: 'kiosk' },
      { userId: 'bob', anonymousId: 'kiosk' },
    ]);
    expect(await groups(aliceFirst)).toEqual([['anonymous_id:kiosk', 'user_id:alice'], ['user_id:bob']]);
    const bobFirst = newSpace();
    await resolveAll(bobFirst, [
      { userId: 'bob', anonymousId: 'kiosk' },
      { userId: 'alice', anonymousId: 'kiosk' },
    ]);
    expect(await groups(bobFirst)).toEqual([['anonymous_id:kiosk', 'user_id:bob'], ['user_id:alice']]);
  });
});

describe('concurrent resolvers', () => {
  beforeAll(() => ensureTables(client, tables));

  /** A resolver that, on its first attempt, waits at `gate` between its reads and its write. */
  function pausedResolver(gate: Promise<void>, reached: () => void): Resolver {
    return new Resolver(store, {
      cacheTtlMs: 5_000,
      cacheEntries: 1_000,
      beforeWrite: async (_input: ResolveInput, attempt: number) => {
        if (attempt > 1) return;
        reached();
        await gate;
      },
    });
  }

  function gate() {
    let open!: () => void;
    let reached!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    const wasReached = new Promise<void>((r) => (reached = r));
    return { opened, open, reached, wasReached };
  }

  it('two creates of one new id between read and write: one profile', async () => {
    const space = newSpace();
    const rules = testRules();
    const g = gate();
    const slow = pausedResolver(g.opened, g.reached).resolve({
      spaceId: space,
      rules,
      message: message({ anonymousId: 'new' }),
      timestamp: 1,
    });
    await g.wasReached;
    const fast = await resolverOf().resolve({ spaceId: space, rules, message: message({ anonymousId: 'new', userId: 'u' }), timestamp: 2 });
    g.open();
    const late = await slow;
    expect(late.profileId).toBe(fast.profileId);
    expect(await groups(space)).toEqual([['anonymous_id:new', 'user_id:u']]);
  });

  it('a merge planned on profiles that change before its write is planned again: no id lost', async () => {
    const space = newSpace();
    const rules = testRules();
    await resolveAll(space, [{ anonymousId: 'a' }, { userId: 'u' }]);
    const g = gate();
    const merge = pausedResolver(g.opened, g.reached).resolve({
      spaceId: space,
      rules,
      message: message({ userId: 'u', anonymousId: 'a' }),
      timestamp: 3,
    });
    await g.wasReached;
    // Meanwhile another consumer adds an email to u's profile and counts an event of a's.
    const other = resolverOf();
    const withEmail = await other.resolve({
      spaceId: space,
      rules,
      message: message({ type: 'identify', userId: 'u', traits: { email: 'u@x.io' } }),
      timestamp: 4,
    });
    await other.touch(
      space,
      (await resolverOf().resolve({ spaceId: space, rules, message: message({ anonymousId: 'a' }), timestamp: 5 })).profileId!,
      { events: 1, lastSeenAt: 5, lastMessageId: 'm' },
    );
    g.open();
    const merged = await merge;
    expect(merged.outcome).toBe('merged');
    expect(await groups(space)).toEqual([['anonymous_id:a', 'email:u@x.io', 'user_id:u']]);
    const dump = await dumpGraph(client, tables, space);
    expect(dump.profiles.get(merged.profileId!)!.events).toBe(1);
    expect(withEmail.profileId).toBeDefined();
  });

  it('many resolvers on interleaved events of the same users: every id on one live profile, caps held', async () => {
    const space = newSpace();
    const rules = testRules({ maxMergesPerProfile: 3 });
    const users = ['u1', 'u2', 'u3'];
    const events: Partial<SegmentMessage>[] = [];
    for (let i = 0; i < 6; i++) {
      for (const u of users) {
        events.push({ anonymousId: `${u}-dev${i}` });
        events.push({ type: 'identify', userId: u, anonymousId: `${u}-dev${i}`, traits: { email: `${u}@x.io` } });
      }
    }
    const resolvers = [0, 1, 2, 3].map(() => resolverOf());
    // Four workers take events round-robin, all at once.
    await Promise.all(
      resolvers.map(async (r, w) => {
        for (let i = w; i < events.length; i += resolvers.length)
          await r.resolve({ spaceId: space, rules, message: message(events[i]), timestamp: i });
      }),
    );
    const dump = await dumpGraph(client, tables, space);
    const { groups: g, problems } = groupsOf(dump);
    expect(problems).toEqual([]);
    for (const p of dump.profiles.values()) expect(p.merges).toBeLessThanOrEqual(3);
    // Every id is mapped; each user's ids are in at most... one group per user (no group spans two users).
    expect(dump.mappings.size).toBe(users.length * 6 + users.length * 2);
    for (const group of g)
      expect(new Set(group.map((id) => id.replace(/^(anonymous_id|user_id|email):/, '').replace(/(-dev\d+|@x\.io)$/, ''))).size).toBe(1);
    for (const u of users) expect(g.filter((group) => group.includes(`user_id:${u}`))).toHaveLength(1);
  });
});
