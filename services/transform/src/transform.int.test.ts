// transform end to end with real processes: the real broker, transform's and the director's
// main.js (build first), a JobDB on the harness MariaDB under a Consul dev server lock, and an
// HTTP sink as the webhooks' endpoint.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TEST_RPC_TOKEN, useDirectorSuite, type DirectorMain } from '@cdp/director/src/testing/harness';
import type { Producer } from 'kafkajs';
import { createKafka, type Kafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  freePort,
  metricValue,
  requireEnv,
  startServiceProcess,
  testDatabaseName,
  testTopicPrefix,
  waitFor,
  waitServiceReady,
  type ServiceProcess,
} from '@cdp/testkit';

const logger = createLogger({ name: 'transform-int', level: 'silent' });
const suite = useDirectorSuite();
const PARTITIONS = 3;

let kafka: Kafka;
let producer: Producer;
let topics: TopicNames;
let prefix: string;
let workspaceFile: string;
let director: DirectorMain;
/** The directors' RPC URL: a restarted director listens on the same port. */
let directorUrl: string;
let transform: ServiceProcess;
let directors = 0;
/** transform's admin API: the same port across its restarts. */
let adminPort: number;
const ADMIN_TOKEN = 'transform-int-admin-token';

/** Source `fn`'s insert function: by event name, each thing a function must not get away with; otherwise it enriches. */
const HOSTILE_FUNCTION = `
async function onTrack(event, settings) {
  switch (event.event) {
    case 'loop': while (true) {}
    case 'bomb': { const a = []; while (true) a.push('x'.repeat(1 << 20) + a.length); }
    case 'env': return { ...event, env: process.env };
    case 'fs': return { ...event, passwd: require('fs').readFileSync('/etc/passwd', 'utf8') };
    case 'net': await fetch('http://127.0.0.1:9/'); return event;
    case 'pollute': Object.prototype.polluted = true; Array.prototype.map = null; return event;
    case 'scalar': return 'not an event';
  }
  event.properties[settings.tag] = true;
  return event;
}`;

/** Two webhooks to the sink: `hook` (one implicit subscription) and `multi` (two subscriptions). */
function writeWorkspace(sinkUrl: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'transform-int-')), 'workspace.json');
  const hook = (id: string, name: string, subscriptions?: unknown[]) => ({
    id,
    name,
    type: 'webhook',
    settings: { url: `${sinkUrl}/${id}`, timeoutMs: 5_000 },
    limits: { maxConcurrency: 50 },
    ...(subscriptions ? { subscriptions } : {}),
  });
  fs.writeFileSync(
    file,
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        { id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk_web'] },
        {
          id: 'app',
          name: 'App',
          spaceId: 'main',
          writeKeys: ['wk_app'],
          trackingPlan: {
            events: [
              {
                name: 'Order Completed',
                properties: { orderId: { type: 'string', required: true }, total: { type: 'number', minimum: 0 } },
              },
            ],
            enforcement: { unplannedEvents: 'block', violations: 'omit' },
          },
        },
        {
          id: 'fn',
          name: 'Functions',
          spaceId: 'main',
          writeKeys: ['wk_fn'],
          transformations: [{ id: 'hostile', type: 'code', code: HOSTILE_FUNCTION, settings: { tag: 'enriched' } }],
        },
      ],
      destinations: [
        hook('hook', 'Hook'),
        hook('multi', 'Multi', [
          { id: 'first', name: 'First', subscribe: 'all' },
          { id: 'second', name: 'Second', subscribe: 'all' },
        ]),
      ],
      connections: [
        { sourceId: 'web', destinationId: 'hook' },
        { sourceId: 'web', destinationId: 'multi' },
        { sourceId: 'app', destinationId: 'hook', transformations: [{ type: 'drop_properties', properties: ['properties.email'] }] },
        { sourceId: 'fn', destinationId: 'hook' },
      ],
    }),
  );
  return file;
}

function envelope(messageId: string, profileId: string, message: Record<string, unknown> = {}, more: Record<string, unknown> = {}) {
  return {
    v: 1,
    sourceId: 'web',
    ...more,
    messageId,
    receivedAt: new Date().toISOString(),
    profileId,
    message: { type: 'track', event: 'Order Completed', messageId, userId: profileId, ...message },
  };
}

async function produce(envelopes: Array<ReturnType<typeof envelope>>): Promise<void> {
  for (let i = 0; i < envelopes.length; i += 500) {
    await producer.send({
      topic: topics.identified,
      messages: envelopes.slice(i, i + 500).map((e) => ({ key: e.profileId, value: JSON.stringify(e) })),
    });
  }
}

/** Bodies the sink received at `/<destination>` whose messageId has this prefix (one entry per request). */
function bodies(destination: string, idPrefix: string): Array<{ messageId: string; properties?: Record<string, unknown> }> {
  return suite.sink.requests
    .filter((r) => r.path === `/${destination}`)
    .map((r) => JSON.parse(r.body) as { messageId: string; properties?: Record<string, unknown> })
    .filter((b) => b.messageId.startsWith(idPrefix));
}

/** messageIds the sink received at `/<destination>` with this prefix (one entry per request). */
function received(destination: string, idPrefix: string): string[] {
  return bodies(destination, idPrefix).map((b) => b.messageId);
}

/** The director's main.js on the shared workspace file and JobDB prefix; `env` on top (e.g. its PORT). */
async function startDirector(env: Record<string, string> = {}): Promise<DirectorMain> {
  directors++;
  return suite.env.directorMain(`pod-${directors}`, {
    controlDb: testDatabaseName(`tfctl${directors}`),
    workspaceFile,
    topicPrefix: prefix,
    env: { DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN, ...env },
  });
}

async function directorReady(d: DirectorMain): Promise<void> {
  await waitServiceReady(d, 60_000);
}

async function startTransform(): Promise<ServiceProcess> {
  const proc = await startServiceProcess('transform', {
    KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
    CDP_TOPIC_PREFIX: prefix,
    CDP_WORKSPACE_FILE: workspaceFile,
    DIRECTOR_RPC_URLS: directorUrl,
    DIRECTOR_RPC_TOKEN: TEST_RPC_TOKEN,
    DIRECTOR_RPC_MAX_BATCH_JOBS: '200',
    DIRECTOR_RPC_MAX_ATTEMPTS: '2',
    DIRECTOR_RPC_TIMEOUT_MS: '3000',
    DIRECTOR_RPC_COOLDOWN_MS: '0',
    KAFKA_WORKER_RETRY_INITIAL_MS: '100',
    KAFKA_WORKER_RETRY_MAX_MS: '500',
    KAFKA_SESSION_TIMEOUT_MS: '10000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    TRANSFORM_GROUP_ID: `${prefix}transform`,
    ADMIN_PORT: String(adminPort),
    ADMIN_TOKEN,
    // Load-bound: on a loaded CI machine a descheduled process can lose 100 ms inside a good call.
    TRANSFORM_FUNCTION_TIMEOUT_MS: '1000',
  });
  await waitServiceReady(proc, 60_000);
  return proc;
}

const metrics = async (name: string, labels: Record<string, string> = {}) => metricValue(await transform.metrics(), name, labels);
const readyz = async () => (await fetch(`http://127.0.0.1:${transform.opsPort}/readyz`)).status;

beforeAll(async () => {
  prefix = testTopicPrefix('transform');
  adminPort = await freePort();
  kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'transform-int', logger });
  topics = await createTestTopics(kafka, prefix, {
    partitions: PARTITIONS,
    roles: ['identified', 'regulations', 'regulation-status', 'undelivered', 'dlq'],
  });
  producer = kafka.producer();
  await producer.connect();
  workspaceFile = writeWorkspace(suite.sink.url);
  await suite.env.provision('tf');
  director = await startDirector();
  await directorReady(director);
  directorUrl = director.rpc;
  transform = await startTransform();
}, 120_000);

afterAll(async () => {
  await transform?.stop('SIGKILL');
  await producer?.disconnect();
});

it('fans an event out to every subscription; integrations All:false and a named false are honoured; a rejected job goes to cdp.dlq', async () => {
  const events = Array.from({ length: 60 }, (_, i) => envelope(`fan-${i}`, `u${i % 7}`));
  const off = envelope('fan-off', 'u1', { integrations: { All: false } });
  const onlyHook = envelope('fan-only-hook', 'u2', { integrations: { All: false, Hook: true } });
  const noMulti = envelope('fan-no-multi', 'u3', { integrations: { Multi: false } });
  // A lone surrogate: the JobDB refuses the payload, so the director rejects these jobs one by one.
  const poison = envelope('fan-poison', 'u4', { event: 'bad \ud800 name' });
  await produce([...events.slice(0, 30), off, onlyHook, noMulti, poison, ...events.slice(30)]);

  // 60 events × (hook + multi's two subscriptions) + onlyHook (1) + noMulti (1).
  await waitFor(() => received('hook', 'fan-').length >= 62 && received('multi', 'fan-').length >= 120, 60_000, 100);
  const dlq = await readTopic(kafka, topics.dlq, 1, { timeoutMs: 30_000 });
  expect(dlq[0].key).toBe('u4');
  expect(dlq[0].headers['cdp-stage']).toBe('transform');
  expect(dlq[0].headers['cdp-error']).toMatch(/director rejected 3 job\(s\): hook\/default: .*multi\/first: .*multi\/second: /);
  // Everything up to the end of every partition was handled (committed) before judging what is absent.
  await waitFor(
    async () => (await metrics('cdp_kafka_consumer_lag_messages')) === 0 && (await metrics('cdp_kafka_messages_processed_total')) >= 64,
    30_000,
    200,
  );

  const hook = received('hook', 'fan-');
  const multi = received('multi', 'fan-');
  expect(new Set(hook)).toEqual(new Set([...events.map((e) => e.messageId), 'fan-only-hook', 'fan-no-multi']));
  expect(new Set(multi)).toEqual(new Set(events.map((e) => e.messageId)));
  // Each subscription is its own job: two requests per event at `multi`.
  for (const e of events) expect(multi.filter((id) => id === e.messageId).length).toBeGreaterThanOrEqual(2);
  expect(hook).not.toContain('fan-off');
  expect(multi).not.toContain('fan-off');
  expect(multi).not.toContain('fan-only-hook');
  expect(multi).not.toContain('fan-no-multi');
  expect(await metrics('cdp_transform_skipped_total', { reason: 'integrations' })).toBe(4);
  expect(await metrics('cdp_transform_jobs_total', { status: 'rejected' })).toBe(3);
  expect(await metrics('cdp_transform_events_total', { outcome: 'no_route' })).toBe(1);
}, 120_000);

it('tracking plan, per-connection transformations, GDPR suppression and forced replays, through the real director', async () => {
  const app = (id: string, user: string, message: Record<string, unknown>) => envelope(id, user, message, { sourceId: 'app' });
  // A suppression of one user of the space, read by transform's follower of cdp.regulations.
  const appliedBefore = await metrics('cdp_kafka_follower_records_total', { topic: topics.regulations, outcome: 'applied' });
  await producer.send({
    topic: topics.regulations,
    messages: [
      {
        key: 'main:gone',
        value: JSON.stringify({
          regulationId: 'reg1',
          type: 'SUPPRESS_ONLY',
          userId: 'gone',
          spaceId: 'main',
          requestedAt: new Date().toISOString(),
        }),
      },
    ],
  });
  await waitFor(
    async () => (await metrics('cdp_kafka_follower_records_total', { topic: topics.regulations, outcome: 'applied' })) > appliedBefore,
    30_000,
    100,
  );
  // Transform's part of the regulation is reported once it applies to the events that follow.
  const [status] = await readTopic(kafka, topics['regulation-status'], 1, { timeoutMs: 30_000 });
  expect(status.key).toBe('reg1:transform');
  expect(JSON.parse(status.value?.toString('utf8') ?? '{}')).toMatchObject({
    regulationId: 'reg1',
    stage: 'transform',
    status: 'FINISHED',
  });
  const hookOnly = { integrations: { All: false, Hook: true } };
  await produce([
    app('plan-ok', 'a1', { properties: { orderId: 'o1', total: 5, email: 'a@b.co' } }),
    app('plan-omit', 'a2', { properties: { orderId: 'o2', total: -1 } }),
    app('plan-blocked', 'a3', { event: 'Not Planned', properties: {} }),
    app('plan-gone', 'gone', { properties: { orderId: 'o3' } }),
    envelope('gdpr-gone', 'gone', hookOnly),
    envelope('gdpr-kept', 'kept', hookOnly),
    envelope('replay-1', 'r', hookOnly),
  ]);
  await waitFor(() => received('hook', 'replay-1').length >= 1 && received('hook', 'plan-omit').length >= 1, 60_000, 100);
  const duplicatesBefore = await metrics('cdp_transform_jobs_total', { destination: 'hook', status: 'duplicate' });
  // A plain replay of an event whose job is still in the JobDB is a duplicate; a forced one is delivered again.
  await produce([envelope('replay-1', 'r', hookOnly, { replay: { id: 'rp1', destinations: ['hook'], force: false } })]);
  await waitFor(
    async () => (await metrics('cdp_transform_jobs_total', { destination: 'hook', status: 'duplicate' })) > duplicatesBefore,
    30_000,
    100,
  );
  await produce([envelope('replay-1', 'r', hookOnly, { replay: { id: 'rp2', destinations: ['hook'], force: true } })]);
  await waitFor(() => received('hook', 'replay-1').length >= 2, 30_000, 100);
  await produce([envelope('replay-1', 'r', hookOnly, { replay: { id: 'rp2', destinations: ['hook'], force: true } })]);
  await waitFor(
    async () => (await metrics('cdp_transform_jobs_total', { destination: 'hook', status: 'duplicate' })) > duplicatesBefore + 1,
    30_000,
    100,
  );
  await waitFor(async () => (await metrics('cdp_kafka_consumer_lag_messages')) === 0, 30_000, 200);

  expect(bodies('hook', 'plan-ok')).toEqual([expect.objectContaining({ properties: { orderId: 'o1', total: 5 } })]); // the connection dropped email
  expect(bodies('hook', 'plan-omit')).toEqual([expect.objectContaining({ properties: { orderId: 'o2' } })]); // the plan omitted total
  expect(received('hook', 'plan-blocked')).toEqual([]);
  expect(received('hook', 'plan-gone')).toEqual([]);
  expect(received('hook', 'gdpr-gone')).toEqual([]);
  expect(received('hook', 'gdpr-kept')).toEqual(['gdpr-kept']);
  // Once, once more for the forced replay rp2, and not for its re-send (the same rp2 key).
  expect(received('hook', 'replay-1')).toEqual(['replay-1', 'replay-1']);
  expect(await metrics('cdp_transform_skipped_total', { reason: 'regulated' })).toBe(2);
  expect(await metrics('cdp_transform_skipped_total', { reason: 'plan_unplanned_event' })).toBe(1);
  expect(
    await metrics('cdp_transform_plan_violations_total', { source: 'app', event: 'Order Completed', rule: 'minimum:properties.total' }),
  ).toBe(1);
  expect(
    await metrics('cdp_transform_plan_violations_total', { source: 'app', event: 'Order Completed', rule: 'unplanned_property' }),
  ).toBe(1);
}, 120_000);

it('insert functions: a looping, allocating, escaping or misbehaving call drops its event and the stream flows on; a broken edit is refused', async () => {
  const fn = (id: string, event: string) => envelope(id, `f${id.length}`, { event, properties: { n: id } }, { sourceId: 'fn' });
  const hostile = ['loop', 'bomb', 'env', 'fs', 'net', 'scalar'];
  const events = [
    ...hostile.flatMap((name, i) => [fn(`fn-good-${i}`, 'Order Completed'), fn(`fn-${name}`, name)]),
    fn('fn-pollute', 'pollute'),
  ];
  for (let i = hostile.length; i < 20; i++) events.push(fn(`fn-good-${i}`, 'Order Completed'));
  await produce(events);
  await waitFor(() => received('hook', 'fn-good-').length >= 20 && received('hook', 'fn-pollute').length >= 1, 60_000, 100);
  await waitFor(async () => (await metrics('cdp_kafka_consumer_lag_messages')) === 0, 30_000, 200);

  expect(bodies('hook', 'fn-good-').every((b) => b.properties?.enriched === true)).toBe(true);
  for (const name of hostile) expect(received('hook', `fn-${name}`)).toEqual([]);
  // The polluting call changed only its own heap: the event left as it came in.
  expect(bodies('hook', 'fn-pollute')).toEqual([expect.objectContaining({ properties: { n: 'fn-pollute' } })]);
  const failures = async (reason: string) => metrics('cdp_transform_function_failures_total', { function: 'hostile', reason });
  expect([await failures('timeout'), await failures('memory'), await failures('error'), await failures('invalid_return')]).toEqual([
    1, 1, 3, 1,
  ]);
  expect(await metrics('cdp_transform_function_invocations_total', { function: 'hostile', outcome: 'returned' })).toBe(21);
  expect(await metrics('cdp_transform_function_disabled', { function: 'hostile' })).toBe(0);

  // An edit whose function does not compile is refused: the version in force (and its function) stays.
  const original = fs.readFileSync(workspaceFile, 'utf8');
  fs.writeFileSync(
    workspaceFile,
    original.replace('async function onTrack(event, settings) {', 'async function onTrack(event, settings {'),
  );
  try {
    await waitFor(async () => (await metrics('cdp_transform_function_compile_errors_total', { function: 'hostile' })) === 1, 30_000, 200);
    await produce([fn('fn-after-refusal', 'Order Completed')]);
    await waitFor(() => received('hook', 'fn-after-refusal').length >= 1, 30_000, 100);
    expect(bodies('hook', 'fn-after-refusal')[0].properties).toEqual({ n: 'fn-after-refusal', enriched: true });
  } finally {
    fs.writeFileSync(workspaceFile, original);
  }
}, 120_000);

it('a director stopped mid-stream: transform backs off and is not ready, then resumes with nothing lost', async () => {
  const events = Array.from({ length: 1_500 }, (_, i) => envelope(`stop-${i}`, `p${i % 50}`, { integrations: { All: false, Hook: true } }));
  const deadLettersBefore = await metrics('cdp_kafka_messages_processed_total', { outcome: 'dead_letter' });
  await produce(events);
  await waitFor(() => received('hook', 'stop-').length >= 100, 60_000, 20);
  await director.stop('SIGKILL');
  const unavailableBefore = await metrics('cdp_transform_directors_unavailable_total');
  await waitFor(async () => (await readyz()) === 503, 30_000, 100);
  expect(await metrics('cdp_transform_directors_unavailable_total')).toBeGreaterThan(unavailableBefore);
  expect(await metrics('cdp_transform_directors_accepting')).toBe(0);
  const deliveredWhileDown = new Set(received('hook', 'stop-')).size;
  expect(deliveredWhileDown).toBeLessThan(events.length);

  // A new director on the same port takes the JobDB once the dead one's session expires.
  director = await startDirector({ PORT: new URL(directorUrl).port });
  await directorReady(director);
  await waitFor(() => new Set(received('hook', 'stop-')).size === events.length, 120_000, 200);
  await waitFor(async () => (await readyz()) === 200, 30_000, 100);
  expect(await metrics('cdp_transform_directors_accepting')).toBe(1);
  // Nothing was skipped to the DLQ meanwhile.
  expect(await metrics('cdp_kafka_messages_processed_total', { outcome: 'dead_letter' })).toBe(deadLettersBefore);
}, 240_000);

it('a backlog larger than one fetch per partition is read to its end', async () => {
  await transform.stop('SIGTERM');
  const padding = 'x'.repeat(1_500);
  // ~1.3 MB per partition of 3: more than kafkajs's 1 MiB maxBytesPerPartition.
  const events = Array.from({ length: 2_400 }, (_, i) =>
    envelope(`backlog-${i}`, `b${i % 60}`, { integrations: { All: false, Hook: true }, properties: { padding } }),
  );
  await produce(events);
  transform = await startTransform();
  await waitFor(() => new Set(received('hook', 'backlog-')).size === events.length, 180_000, 200);
  await waitFor(async () => (await metrics('cdp_kafka_consumer_lag_messages')) === 0, 30_000, 200);
}, 240_000);
