// GDPR deletions at destinations through the director: delete jobs (as transform sends them for a
// delete regulation) stored in a real JobDB, run with the definition's delete handler against a
// local HTTPS sink standing for Amplitude's user deletion API (never the internet), retried per
// the delivery rules, and each destination's part reported on a real cdp.regulation-status topic.
import type mysql from 'mysql2/promise';
import { actionDestinationIssues } from '@cdp/actions';
import { DELETE_SUBSCRIPTION_ID, type DeletionPayload } from '@cdp/director-rpc';
import { regulationStatusSchema, type RegulationStatus } from '@cdp/events';
import { createKafka, RegulationReporter } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { HttpSink, makeTestCertificates, requireEnv, testTopicPrefix, type SinkAnswer, type TestCertificates } from '@cdp/testkit';
import { parseWorkspace } from '@cdp/workspace';
import { historyOf, postJobs, TestEnv, testSettings, useDirectorSuite, waitFor } from './testing/harness';
import type { Director } from './service';

const suite = useDirectorSuite();
let env: TestEnv;
let partner: HttpSink;
let certs: TestCertificates;
let director: Director;
let reporter: RegulationReporter;
let database: string;
let statusTopic: string;
const logger = createLogger({ name: 'director-deletions-test', level: 'silent' });
const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'director-deletions-test', logger });

const secrets = {
  H26_DEL_AMP_KEY: 'amp-del-key',
  H26_DEL_AMP_SECRET: 'amp-del-secret',
  H26_DEL_MP_TOKEN: 'mp-del-token',
  H26_DEL_MP_SECRET: 'mp-del-secret',
};
const DELETIONS_PATH = '/api/2/deletions/users';

/** Scripted answers per deleted user id, in order; 200 once used up. */
const scripted = new Map<string, SinkAnswer[]>([
  ['u-2', [{ status: 503, body: 'try later' }]],
  ['u-3', [{ status: 400, body: '{"error":"invalid user"}' }]],
]);

const amplitude = (id: string) => ({
  id,
  name: id,
  type: 'actions-amplitude',
  settings: { apiKey: { $env: 'H26_DEL_AMP_KEY' }, secretKey: { $env: 'H26_DEL_AMP_SECRET' } },
  subscriptions: [{ id: 'log', name: 'log', action: 'logEvent', subscribe: 'type = "track"', mapping: {} }],
});
const workspace = () =>
  parseWorkspace(
    JSON.stringify({
      spaces: [
        { id: 'main', name: 'Main' },
        { id: 'other', name: 'Other' },
      ],
      sources: [
        { id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] },
        { id: 'app', name: 'app', spaceId: 'other', writeKeys: ['wk_app'] },
      ],
      destinations: [
        amplitude('amp'),
        amplitude('ampx'), // connected to the other space only: main's users are not its users
        {
          id: 'mix',
          name: 'mix',
          type: 'actions-mixpanel',
          settings: { projectToken: { $env: 'H26_DEL_MP_TOKEN' }, apiSecret: { $env: 'H26_DEL_MP_SECRET' } },
          subscriptions: [{ id: 'track', name: 'track', action: 'trackEvent', subscribe: 'type = "track"', mapping: {} }],
        },
      ],
      connections: [
        { sourceId: 'web', destinationId: 'amp' },
        { sourceId: 'web', destinationId: 'mix' },
        { sourceId: 'app', destinationId: 'ampx' },
      ],
    }),
    { format: 'json', env: process.env, check: actionDestinationIssues },
  );

/** The jobs transform sends for one regulation record (see services/transform deletions.ts). */
function deleteJobs(regulationId: string, userId: string, subjects: number) {
  const job = (destinationId: string, sourceId: string, connected: boolean) => {
    const payload: DeletionPayload = { type: 'delete', regulationId, spaceId: 'main', userId, subjects, connected };
    return { sourceId, messageId: `regulation:${regulationId}:${userId}`, destinationId, subscriptionId: DELETE_SUBSCRIPTION_ID, payload };
  };
  return [job('amp', 'web', true), job('ampx', 'app', false), job('mix', 'web', true)];
}

beforeAll(async () => {
  ({ env } = suite);
  Object.assign(process.env, secrets);
  certs = makeTestCertificates(['amplitude.com']);
  partner = await new HttpSink({ tls: { key: certs.key, cert: certs.cert } }).start();
  partner.route(DELETIONS_PATH, (req) => {
    const [userId] = (JSON.parse(req.body) as { user_ids: string[] }).user_ids;
    return scripted.get(userId)?.shift() ?? { status: 200, headers: { 'content-type': 'application/json' }, body: '{"day":"2026-12-05"}' };
  });
  const prefix = testTopicPrefix('dirdel');
  statusTopic = (await createTestTopics(kafka, prefix, { roles: ['regulation-status'] }))['regulation-status'];
  reporter = new RegulationReporter({ kafka, topic: statusTopic, stage: 'destinations', logger });
  database = (await env.provision('del')).database;
  const ws = workspace();
  const settings = testSettings(env.prefix, {
    DIRECTOR_ACTIONS_CA_FILE: certs.caFile,
    DIRECTOR_ACTIONS_CONNECT_TO: `127.0.0.1:${new URL(partner.url).port}`,
  });
  director = env.director(settings, { workspace: () => ws, regulationStatus: reporter });
  await director.start();
  await waitFor(() => director.isReady);
});

afterAll(async () => {
  await director?.stop();
  await reporter?.close();
  await partner?.close();
  certs?.remove();
});

it("runs Amplitude's delete handler per user, retried per the rules, and reports each destination's part of each regulation", async () => {
  // R1: two users, one answered 503 first; R2: one user the partner refuses (400).
  const jobs = [...deleteJobs('r1', 'u-1', 2), ...deleteJobs('r1', 'u-2', 2), ...deleteJobs('r2', 'u-3', 1)];
  expect((await postJobs(director.url!, jobs)).status).toBe(200);

  const reports = await readTopic<RegulationStatus>(kafka, statusTopic, 4, {
    timeoutMs: 30_000,
    decode: (m) => regulationStatusSchema.parse(JSON.parse(m.value!.toString('utf8'))),
  });
  const byKey = new Map(reports.map((r) => [`${r.regulationId}:${r.stage}`, r]));
  expect([...byKey.keys()].sort()).toEqual(['r1:destination.amp', 'r1:destination.ampx', 'r2:destination.amp', 'r2:destination.ampx']);
  expect(byKey.get('r1:destination.amp')).toMatchObject({ status: 'FINISHED', handled: 2, failed: 0 });
  expect(byKey.get('r2:destination.amp')).toMatchObject({ status: 'FAILED', handled: 1, failed: 1, detail: 'discarded: HTTP 400' });
  // Not connected to the users' space: counted, nothing sent.
  expect(byKey.get('r1:destination.ampx')).toMatchObject({ status: 'FINISHED', handled: 2, failed: 0 });

  // The partner's requests, field by field (Amplitude's user deletion API).
  const requests = partner.requests.filter((r) => r.path === DELETIONS_PATH);
  expect(requests.map((r) => JSON.parse(r.body).user_ids[0]).sort()).toEqual(['u-1', 'u-2', 'u-2', 'u-3']);
  for (const req of requests) {
    expect(req.method).toBe('POST');
    expect(req.headers.host).toBe('amplitude.com');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe(
      `Basic ${Buffer.from(`${secrets.H26_DEL_AMP_KEY}:${secrets.H26_DEL_AMP_SECRET}`).toString('base64')}`,
    );
    expect(JSON.parse(req.body)).toEqual({ user_ids: [JSON.parse(req.body).user_ids[0]], requester: 'segment' });
  }

  // In the JobDB like any job: the 503 retried, the 400 discarded with its answer; Mixpanel has no
  // delete handler (nothing sent, no stage).
  const history = await historyOf(env, database);
  const jobRows = await env.query<mysql.RowDataPacket[]>(database, 'SELECT id, message_id, destination_id FROM jobs');
  const of = (destinationId: string, userId: string) => {
    const row = jobRows.find((j) => j.destination_id === destinationId && String(j.message_id).endsWith(`:${userId}`))!;
    return history.get(String(row.id))!;
  };
  expect(of('amp', 'u-2').states).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
  expect(of('amp', 'u-2').rows[1].http_status).toBe(503);
  expect(of('amp', 'u-3').states).toEqual(['executing', 'discarded']);
  expect(String(of('amp', 'u-3').rows[1].response_excerpt)).toContain('invalid user');
  expect(of('mix', 'u-1').states).toEqual(['executing', 'succeeded']);
  expect(reports.some((r) => r.stage === 'destination.mix')).toBe(false);
});
