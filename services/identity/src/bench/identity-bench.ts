// pnpm bench:identity — identity's resolution rate on DynamoDB Local on this box (started and
// stopped here), for a known-user mix and a new-user mix, against the same DynamoDB Local's raw
// GetItem and PutItem rates at the same concurrency. Kafka is left out (the stage's output goes
// to a counting sink): this measures the graph work per event. Ends with one JSON line.
import { BatchWriteItemCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { Envelope, SegmentMessage } from '@cdp/events';
import type { BatchContext, Decoded } from '@cdp/kafka';
import { startAdminServer } from '@cdp/http';
import { createLogger } from '@cdp/log';
import { percentile, startInfra, stopInfra } from '@cdp/testkit';
import { parseWorkspace } from '@cdp/workspace';
import { GraphStore } from '../graph';
import { profileApiRoutes } from '../profile-api';
import { RecentEvents } from '../recent';
import { Resolver } from '../resolver';
import { IdentityStage } from '../service';
import { dynamoClient, ensureTables, KEY, SORT_KEY, tableNames } from '../tables';

const PHASE_MS = Number(process.env.BENCH_IDENTITY_PHASE_MS ?? 10_000);
/** Partitions handled at once by one process (IDENTITY_PARTITIONS_CONCURRENTLY's default). */
const CONCURRENCY = 4;
const CHUNK = 100;
/** Users of the known mix: few enough that most events find their user in the caches. */
const KNOWN_USERS = Number(process.env.BENCH_IDENTITY_KNOWN_USERS ?? 200);

/** DynamoDB calls sent, by command (counted by a middleware on the bench's client). */
const calls = new Map<string, number>();
const totalCalls = () => [...calls.values()].reduce((a, b) => a + b, 0);

async function timed(
  label: string,
  run: (worker: number, i: number) => Promise<number>,
): Promise<{ rate: number; p99Ms: number; callsPerEvent: number; callsPerSecond: number }> {
  const callsBefore = new Map(calls);
  const until = Date.now() + PHASE_MS;
  const latencies: number[] = [];
  let done = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, w) => {
      for (let i = 0; Date.now() < until; i++) {
        const start = performance.now();
        const n = await run(w, i);
        latencies.push(performance.now() - start);
        done += n;
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  const rate = Math.round(done / seconds);
  const p99Ms = Number(percentile(latencies, 0.99).toFixed(2));
  const sent = totalCalls() - [...callsBefore.values()].reduce((a, b) => a + b, 0);
  const byCommand = [...calls]
    .map(([c, n]) => `${c.replace(/Command$/, '')} ${n - (callsBefore.get(c) ?? 0)}`)
    .filter((e) => !e.endsWith(' 0'));
  const callsPerEvent = Number((sent / Math.max(done, 1)).toFixed(3));
  const callsPerSecond = Math.round(sent / seconds);
  process.stderr.write(
    `${label}: ${rate}/s (${done} in ${PHASE_MS} ms, p99 per call ${p99Ms} ms); DynamoDB ${callsPerSecond} calls/s, ${callsPerEvent} per unit (${byCommand.join(', ')})\n`,
  );
  return { rate, p99Ms, callsPerEvent, callsPerSecond };
}

async function main(): Promise<void> {
  const infra = await startInfra(['dynamodb']);
  try {
    Object.assign(process.env, infra.env);
    const client = dynamoClient({ AWS_REGION: infra.env.AWS_REGION ?? 'us-east-1', DYNAMODB_ENDPOINT: infra.env.DYNAMODB_ENDPOINT });
    client.middlewareStack.add(
      (next, context) => async (args) => {
        calls.set(context.commandName ?? '?', (calls.get(context.commandName ?? '?') ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: 'benchCallCounter' },
    );
    const tables = tableNames('bench-');
    await ensureTables(client, tables);

    const put = await timed('raw PutItem', async (w, i) => {
      await client.send(new PutItemCommand({ TableName: tables.ids, Item: { [KEY]: { S: `raw|${w}-${i}` }, profileId: { S: 'p' } } }));
      return 1;
    });
    const get = await timed('raw GetItem', async (w, i) => {
      await client.send(new GetItemCommand({ TableName: tables.ids, Key: { [KEY]: { S: `raw|${w}-${i % 1000}` } }, ConsistentRead: true }));
      return 1;
    });

    // What every counted event costs at least: one recent-event item, written 25 a call.
    const body = 'x'.repeat(1_000);
    const batchPut = await timed('raw BatchWriteItem (25 items of 1 KB a call; per item)', async (w, i) => {
      const items = Array.from({ length: 25 }, (_, k) => ({
        PutRequest: { Item: { [KEY]: { S: `raw|${w}` }, [SORT_KEY]: { N: String((i * 25 + k) % 1_000) }, body: { S: body } } },
      }));
      await client.send(new BatchWriteItemCommand({ RequestItems: { [tables.events]: items } }));
      return items.length;
    });

    const workspace = parseWorkspace(
      JSON.stringify({
        spaces: [{ id: 'main', name: 'Main' }],
        sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_bench_identity'] }],
      }),
      { format: 'json' },
    );
    const store = new GraphStore(client, tables);
    const resolver = new Resolver(store, { cacheTtlMs: 5_000, cacheEntries: 100_000 });
    const recent = new RecentEvents(client, tables, { size: 1_000, ttlMs: 14 * 86_400_000 });
    let published = 0;
    const benchStart = Date.now();
    const stage = new IdentityStage({
      resolver,
      recent,
      producer: { send: async (_t, m) => void (published += m.length) },
      outputTopic: 'sink',
      workspace: () => workspace,
    });
    const ctx: BatchContext = {
      topic: 'bench',
      partition: 0,
      heartbeat: async () => undefined,
      deadLetter: () => undefined,
      isRunning: () => true,
    };
    let seq = 0;
    const item = (m: Partial<SegmentMessage>): Decoded<Envelope> => {
      const messageId = `b${++seq}`;
      // Recent event times, so each is kept as a recent event as in production.
      const at = new Date(benchStart - 3_600_000 + seq).toISOString();
      const message = { type: 'track', event: 'Viewed', messageId, timestamp: at, ...m } as SegmentMessage;
      return {
        message: { topic: 'bench', partition: 0, offset: String(seq), key: null, value: null, headers: {}, timestamp: '0' },
        value: { v: 1, sourceId: 'web', messageId, receivedAt: at, message },
      };
    };

    // Known users: identified once (not timed), then tracks by userId or anonymousId, ~1 in 20 an identify with a changed trait.
    for (let u = 0; u < KNOWN_USERS; u += CHUNK) {
      await stage.handle(
        Array.from({ length: CHUNK }, (_, k) =>
          item({ type: 'identify', userId: `u${u + k}`, anonymousId: `a${u + k}`, traits: { email: `u${u + k}@x.io` } }),
        ),
        ctx,
      );
    }
    const pick = () => Math.floor(Math.random() * KNOWN_USERS);
    const knownChunk = async (): Promise<number> => {
      const chunk = Array.from({ length: CHUNK }, (_, k) => {
        const u = pick();
        if (k % 20 === 0) return item({ type: 'identify', userId: `u${u}`, traits: { plan: `p${seq}` } });
        return item(k % 2 ? { userId: `u${u}` } : { anonymousId: `a${u}` });
      });
      await stage.handle(chunk, ctx);
      return chunk.length;
    };
    const known = await timed('known-user mix (events)', knownChunk);
    // Profile API /traits on the admin server (loopback), alone, then next to the known-user event stream.
    const token = 'bench-identity-admin-token-0123456789';
    const admin = await startAdminServer({
      service: 'identity',
      port: 0,
      host: '127.0.0.1',
      token,
      logger: createLogger({ name: 'identity-bench', level: 'warn' }),
      routes: profileApiRoutes({ store, recent, workspace: () => workspace, ratePerSecond: 1_000_000 }),
    });
    const traitsLoad = async (stopAt: () => boolean): Promise<{ p99Ms: number; perSecond: number }> => {
      const latencies: number[] = [];
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (!stopAt()) {
            const start = performance.now();
            const res = await fetch(`${admin.url}/v1/spaces/main/collections/users/profiles/user_id:u${pick()}/traits`, {
              headers: { Authorization: `Bearer ${token}` },
            });
            if (res.status !== 200) throw new Error(`/traits answered ${res.status}`);
            await res.arrayBuffer();
            latencies.push(performance.now() - start);
          }
        }),
      );
      return {
        p99Ms: Number(percentile(latencies, 0.99).toFixed(2)),
        perSecond: Math.round(latencies.length / ((Date.now() - t0) / 1000)),
      };
    };
    const aloneUntil = Date.now() + PHASE_MS;
    const traitsAlone = await traitsLoad(() => Date.now() >= aloneUntil);
    process.stderr.write(`Profile API /traits alone: ${traitsAlone.perSecond}/s, p99 ${traitsAlone.p99Ms} ms\n`);
    let streaming = true;
    const [withApi, traitsUnderLoad] = await Promise.all([
      timed('known-user mix next to /traits load (events)', knownChunk).finally(() => (streaming = false)),
      traitsLoad(() => !streaming),
    ]);
    process.stderr.write(`Profile API /traits next to the event stream: ${traitsUnderLoad.perSecond}/s, p99 ${traitsUnderLoad.p99Ms} ms\n`);
    await admin.close();
    // New users: an anonymous visit then its identify, every one new.
    const fresh = await timed('new-user mix (events)', async (w, i) => {
      const chunk: Decoded<Envelope>[] = [];
      for (let k = 0; k < CHUNK / 2; k++) {
        const id = `n${w}-${i}-${k}`;
        chunk.push(
          item({ anonymousId: `a-${id}` }),
          item({ type: 'identify', userId: `u-${id}`, anonymousId: `a-${id}`, traits: { email: `${id}@x.io` } }),
        );
      }
      await stage.handle(chunk, ctx);
      return chunk.length;
    });
    client.destroy();
    process.stderr.write(`published ${published} events to the counting sink; concurrency ${CONCURRENCY}, chunks of ${CHUNK}\n`);
    process.stdout.write(
      `${JSON.stringify({
        bench: 'identity',
        value: known.rate,
        unit: 'events/s',
        baseline: get.rate,
        ratio: Number((known.rate / get.rate).toFixed(2)),
        p99_ms: known.p99Ms,
        calls_per_event: known.callsPerEvent,
        dynamodb_calls_per_s: known.callsPerSecond,
        new_user_events_per_s: fresh.rate,
        new_user_calls_per_event: fresh.callsPerEvent,
        new_user_baseline_put_per_s: put.rate,
        batch_write_items_per_s: batchPut.rate,
        new_user_ratio: Number((fresh.rate / put.rate).toFixed(2)),
        traits_p99_ms: traitsUnderLoad.p99Ms,
        traits_p99_alone_ms: traitsAlone.p99Ms,
        traits_per_s: traitsUnderLoad.perSecond,
        events_per_s_next_to_traits: withApi.rate,
      })}\n`,
    );
  } finally {
    await stopInfra(infra);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:identity failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
