// GDPR deletions from cdp.regulations to a destination's delete handler: transform's deletion
// consumer (real broker, its own group) sends the delete jobs through the real RPC client to a
// real director (in-process, JobDB on the harness MariaDB), which calls a local HTTPS sink
// standing for Amplitude's user deletion API and reports on a real cdp.regulation-status.
import { DirectorRpcClient, staticDiscovery } from '@cdp/director-rpc';
import { TEST_RPC_TOKEN, testSettings, useDirectorSuite, waitFor } from '@cdp/director/src/testing/harness';
import type { Director } from '@cdp/director/src/service';
import { regulationKey, regulationStatusSchema, type Regulation } from '@cdp/events';
import { createKafka, RegulationReporter, type TopicNames } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { HttpSink, makeTestCertificates, requireEnv, testTopicPrefix, type TestCertificates } from '@cdp/testkit';
import { parseWorkspace } from '@cdp/workspace';
import type { Producer } from 'kafkajs';
import { deletionConsumer } from './deletions';

const suite = useDirectorSuite();
const logger = createLogger({ name: 'transform-deletions-test', level: 'silent' });
const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'transform-deletions-test', logger });
const DELETIONS_PATH = '/api/2/deletions/users';
let topics: TopicNames;
let producer: Producer;
let partner: HttpSink;
let certs: TestCertificates;
let director: Director;
let reporter: RegulationReporter;
let rpc: DirectorRpcClient;
let groupId: string;

const workspace = parseWorkspace(
  JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] }],
    destinations: [
      {
        id: 'amp',
        name: 'amp',
        type: 'actions-amplitude',
        settings: { apiKey: { $env: 'H26_TD_AMP_KEY' }, secretKey: { $env: 'H26_TD_AMP_SECRET' } },
        subscriptions: [{ id: 'log', name: 'log', action: 'logEvent', subscribe: 'type = "track"', mapping: {} }],
      },
    ],
    connections: [{ sourceId: 'web', destinationId: 'amp' }],
  }),
  { format: 'json', env: { H26_TD_AMP_KEY: 'td-key', H26_TD_AMP_SECRET: 'td-secret' } },
);

const consumer = () =>
  deletionConsumer({ kafka, groupId, topics: [topics.regulations], dlqTopic: topics.dlq, logger, sender: rpc, workspace: () => workspace });

async function publish(regulationId: string, type: Regulation['type'], userIds: string[]) {
  await producer.send({
    topic: topics.regulations,
    messages: userIds.map((userId) => {
      const value: Regulation = {
        regulationId,
        type,
        userId,
        spaceId: 'main',
        requestedAt: new Date().toISOString(),
        subjects: userIds.length,
      };
      return { key: regulationKey('main', userId), value: JSON.stringify(value) };
    }),
  });
}

const deletedUsers = () => partner.requests.filter((r) => r.path === DELETIONS_PATH).map((r) => JSON.parse(r.body).user_ids[0] as string);

beforeAll(async () => {
  const prefix = testTopicPrefix('tfdel');
  groupId = `${prefix}deletions`;
  topics = await createTestTopics(kafka, prefix, { partitions: 2, roles: ['regulations', 'regulation-status', 'dlq'] });
  producer = kafka.producer();
  await producer.connect();
  certs = makeTestCertificates(['amplitude.com']);
  partner = await new HttpSink({ tls: { key: certs.key, cert: certs.cert } }).start();
  partner.route(DELETIONS_PATH, () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' }));
  reporter = new RegulationReporter({ kafka, topic: topics['regulation-status'], stage: 'destinations', logger });
  await suite.env.provision('tfdel');
  const settings = testSettings(suite.env.prefix, {
    DIRECTOR_ACTIONS_CA_FILE: certs.caFile,
    DIRECTOR_ACTIONS_CONNECT_TO: `127.0.0.1:${new URL(partner.url).port}`,
  });
  director = suite.env.director(settings, { workspace: () => workspace, regulationStatus: reporter });
  await director.start();
  await waitFor(() => director.isReady);
  rpc = new DirectorRpcClient({ discovery: staticDiscovery([director.url!]), logger, token: TEST_RPC_TOKEN });
}, 60_000);

afterAll(async () => {
  await rpc?.close();
  await director?.stop();
  await reporter?.close();
  await producer?.disconnect();
  await partner?.close();
  certs?.remove();
});

it('a delete regulation reaches the delete handler once per user, across a restart of the consumer, and is reported FINISHED', async () => {
  const first = consumer();
  await first.start();
  await publish('reg-del', 'DELETE_ONLY', ['du-1', 'du-2']);
  await publish('reg-sup', 'SUPPRESS_ONLY', ['su-1']); // no deletion
  const [report] = await readTopic(kafka, topics['regulation-status'], 1, {
    timeoutMs: 30_000,
    decode: (m) => regulationStatusSchema.parse(JSON.parse(m.value!.toString('utf8'))),
  });
  expect(report).toMatchObject({ regulationId: 'reg-del', stage: 'destination.amp', status: 'FINISHED', handled: 2, failed: 0 });
  expect(deletedUsers().sort()).toEqual(['du-1', 'du-2']);
  await first.stop();

  // The group resumes after its commits: the records already sent are not sent again.
  const second = consumer();
  await second.start();
  await publish('reg-del-2', 'SUPPRESS_WITH_DELETE', ['du-3']);
  await waitFor(() => deletedUsers().includes('du-3'), 30_000);
  await second.stop();
  expect(deletedUsers().sort()).toEqual(['du-1', 'du-2', 'du-3']);
});
