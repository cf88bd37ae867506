import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { decodeEnvelope, encodeEnvelope, type Envelope, type SegmentMessage } from '@cdp/events';
import { BatchingProducer, createKafka, type Kafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  LOCAL_AWS_ENV,
  metricValue,
  requireEnv,
  startServiceProcess,
  testTopicPrefix,
  uniqueSuffix,
  waitServiceExit,
  waitServiceReady,
  type ServiceProcess,
} from '@cdp/testkit';
import { RecentEvents } from './recent';
import { dynamoClient, ensureTables, tableNames, type TableNames } from './tables';
import { dumpGraph, groupsOf, liveProfileOf } from './testing/graph';

const USERS = 40;
const TRACKS_PER_USER = 50;
/** ~2 KB events: ~4.5 MB in all, more than one 1 MiB fetch per partition of two. */
const PADDING = 'x'.repeat(2_000);
const PARTITIONS = 2;

describe('identity service (real broker, DynamoDB Local, two processes)', () => {
  let kafka: Kafka;
  let producer: BatchingProducer;
  let topics: TopicNames;
  let dynamo: DynamoDBClient;
  let tables: TableNames;
  let dir: string;
  let topicPrefix: string;
  const groupId = `identity-${uniqueSuffix()}`;
  const procs: ServiceProcess[] = [];

  beforeAll(async () => {
    const logger = createLogger({ name: 'identity-test', level: 'warn' });
    kafka = createKafka({ brokers: requireEnv('KAFKA_BROKERS').split(','), clientId: 'identity-test', logger });
    const prefix = testTopicPrefix('identity');
    topics = await createTestTopics(kafka, prefix, { partitions: PARTITIONS });
    producer = new BatchingProducer(kafka, { logger });
    await producer.connect();
    dynamo = dynamoClient({ AWS_REGION: LOCAL_AWS_ENV.AWS_REGION, DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT') });
    tables = tableNames(`${prefix.replace(/\./g, '-')}${uniqueSuffix()}-`);
    await ensureTables(dynamo, tables);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-test-'));
    fs.writeFileSync(
      path.join(dir, 'workspace.json'),
      JSON.stringify({
        spaces: [{ id: 'main', name: 'Main' }],
        sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web_identity'] }],
      }),
    );
    topicPrefix = prefix;
  });

  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await producer?.disconnect();
    for (const TableName of Object.values(tables ?? {})) await dynamo.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
    dynamo?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = () =>
    startServiceProcess('identity', {
      KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
      CDP_TOPIC_PREFIX: topicPrefix,
      CDP_WORKSPACE_FILE: path.join(dir, 'workspace.json'),
      ...LOCAL_AWS_ENV,
      DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT'),
      IDENTITY_TABLE_PREFIX: tables.ids.slice(0, -'identity-ids'.length),
      IDENTITY_GROUP_ID: groupId,
      ADMIN_PORT: '0',
      ADMIN_TOKEN: 'identity-test-admin-token-0123',
    });

  let seq = 0;
  const testStart = Date.now();
  function envelope(m: Partial<SegmentMessage>, extra: Partial<Envelope> = {}): { key: string; value: string } {
    const messageId = `m${++seq}`;
    // Within the last day (recent events are kept for 14 days after their time), in send order.
    const t = new Date(testStart - 86_400_000 + seq * 1000).toISOString();
    const message = { type: 'track', event: 'Viewed', messageId, timestamp: t, properties: { padding: PADDING }, ...m } as SegmentMessage;
    const env: Envelope = { v: 1, sourceId: 'web', messageId, receivedAt: t, message, ...extra };
    return { key: `web:${messageId}`, value: encodeEnvelope(env) };
  }

  it('resolves a multi-MB backlog to one profile per user, merges by identify and alias, counts replays once, keys by profileId', async () => {
    // Both processes are in the group before the backlog arrives (no rebalance re-reads a chunk,
    // which at least once would count twice). Per user: an anonymous visit, an identify joining
    // it, a second device joined by an alias, then tracks with either id.
    const sent: Array<{ key: string; value: string; user: number }> = [];
    for (let u = 0; u < USERS; u++) {
      sent.push({ ...envelope({ anonymousId: `a${u}` }), user: u });
      sent.push({ ...envelope({ type: 'identify', userId: `u${u}`, anonymousId: `a${u}`, traits: { email: `u${u}@x.io` } }), user: u });
      sent.push({ ...envelope({ anonymousId: `b${u}` }), user: u });
      sent.push({ ...envelope({ type: 'alias', userId: `u${u}`, previousId: `b${u}` }), user: u });
    }
    for (let i = 0; i < TRACKS_PER_USER; i++) {
      for (let u = 0; u < USERS; u++)
        sent.push({
          ...envelope(i % 3 === 0 ? { anonymousId: `b${u}` } : i % 3 === 1 ? { userId: `u${u}` } : { anonymousId: `a${u}` }),
          user: u,
        });
    }
    const bytes = sent.reduce((n, m) => n + m.value.length, 0);
    expect(bytes / PARTITIONS).toBeGreaterThan(2 * 1024 * 1024);
    procs.push(await start(), await start());
    for (const p of procs) await waitServiceReady(p, 60_000);
    await producer.send(
      topics.deduped,
      sent.map(({ key, value }) => ({ key, value })),
    );
    const out = await readTopic(kafka, topics.identified, sent.length, {
      timeoutMs: 240_000,
      quietMs: 2_000,
      decode: (m) => ({ key: m.key, envelope: decodeEnvelope(m.value) }),
    });
    expect(out).toHaveLength(sent.length);

    const dump = await dumpGraph(dynamo, tables, 'main');
    const { groups, problems } = groupsOf(dump);
    expect(problems).toEqual([]);
    expect(groups).toHaveLength(USERS);
    for (const g of groups) expect(g).toHaveLength(4); // user_id, email, two anonymous ids
    const userOf = new Map(sent.map((m) => [JSON.parse(m.value).messageId as string, m.user]));
    const liveOfUser = new Map<number, string>();
    for (const { key, envelope: e } of out) {
      expect(e.profileId).toBeDefined();
      expect(key).toBe(e.profileId);
      const user = userOf.get(e.messageId)!;
      const live = liveProfileOf(dump, `user_id:u${user}`)!;
      // Published ids are the profile or one merged into it, never another user's.
      let p: string | undefined = e.profileId;
      while (dump.profiles.get(p!)?.mergedInto) p = dump.profiles.get(p!)!.mergedInto;
      expect(p).toBe(live);
      liveOfUser.set(user, live);
    }
    expect(new Set(liveOfUser.values()).size).toBe(USERS);
    // Each event counted once, on the live profiles.
    const counted = [...dump.profiles.values()].filter((p) => !p.mergedInto).reduce((n, p) => n + p.events, 0);
    expect(counted).toBe(sent.length);
    const merges = (await Promise.all(procs.map((p) => p.metrics()))).reduce(
      (n, text) => n + metricValue(text, 'cdp_identity_merges_total'),
      0,
    );
    // Partitions run at once, so an alias may be handled before its anonymous visit (an attach,
    // no merge); most users still need a merge.
    expect(merges).toBeGreaterThan(USERS / 4);
    expect(merges).toBe([...dump.profiles.values()].filter((p) => p.mergedInto).length);

    // Replayed copies resolve to the live profile (stable from here on) and are not counted again.
    const replayed = Array.from({ length: USERS }, (_, u) =>
      envelope({ userId: `u${u}` }, { replay: { id: 'r1', destinations: ['d1'], force: false } }),
    );
    await producer.send(topics.deduped, replayed);
    const after = await readTopic(kafka, topics.identified, sent.length + USERS, {
      timeoutMs: 60_000,
      decode: (m) => decodeEnvelope(m.value),
    });
    const replayOut = after.filter((e) => e.replay);
    expect(replayOut).toHaveLength(USERS);
    for (const e of replayOut) expect(e.profileId).toBe(liveOfUser.get(Number(e.message.userId!.slice(1))));
    const again = await dumpGraph(dynamo, tables, 'main');
    // Live profiles only: a profile counted before it was merged away keeps its count (its winner took it over too).
    expect([...again.profiles.values()].filter((p) => !p.mergedInto).reduce((n, p) => n + p.events, 0)).toBe(counted);
    // Every counted event is kept as a recent event of its user, on the live profile or one
    // merged into it; replayed copies are not kept again.
    const recent = new RecentEvents(dynamo, tables, { size: 1_000, ttlMs: 14 * 86_400_000 });
    for (const [user, live] of liveOfUser) {
      const kept = await recent.summaries('main', [live, ...again.profiles.get(live)!.mergedFrom]);
      expect(kept).toHaveLength(4 + TRACKS_PER_USER);
      for (const s of kept) expect(userOf.get(s.messageId)).toBe(user);
    }

    // An event of a source the workspace does not know goes to cdp.dlq; the partition goes on.
    await producer.send(topics.deduped, [{ key: 'ghost:g1', value: envelope({ userId: 'u0' }, { sourceId: 'ghost' }).value }]);
    expect((await readTopic(kafka, topics.dlq, 1, { timeoutMs: 60_000 })).map((m) => m.key)).toEqual(['ghost:g1']);
  }, 360_000);

  it('fails its start naming the tables identity-tables has not created', async () => {
    const proc = await startServiceProcess(
      'identity',
      {
        KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
        CDP_TOPIC_PREFIX: topicPrefix,
        CDP_WORKSPACE_FILE: path.join(dir, 'workspace.json'),
        ...LOCAL_AWS_ENV,
        DYNAMODB_ENDPOINT: requireEnv('DYNAMODB_ENDPOINT'),
        IDENTITY_TABLE_PREFIX: `absent-${uniqueSuffix()}-`,
        ADMIN_PORT: '0',
        ADMIN_TOKEN: 'identity-test-admin-token-0123',
      },
      { captureOutput: true },
    );
    expect(await waitServiceExit(proc, 30_000)).not.toBe(0);
    expect(proc.output()).toMatch(/identity-ids: missing.*identity-profiles: missing/);
    expect(proc.output()).toContain('identity-tables create');
  });
});
