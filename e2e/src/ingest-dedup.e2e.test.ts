// SDK → tapi → cdp.ingest → dedup → cdp.deduped, all real: the unchanged Segment Node SDK,
// the services as processes, a real Kafka broker. A client retry (the same batch sent twice)
// must come out of dedup once, with the envelope tapi built. The same run goes through the
// harness broker's PLAINTEXT listener and through the SASL_SSL listener of a secured broker of
// this file, with SCRAM-SHA-512 and its CA (what managed Kafka such as MSK and Confluent asks of
// clients); wrong credentials stop both services. The client settings the services use
// (libs/kafka kafkaConnection) are checked against the same broker: CA verification, PLAIN.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Analytics } from '@segment/analytics-node';
import { loadConfig } from '@cdp/config';
import { decodeEnvelope } from '@cdp/events';
import { createKafka, isKafkaAuthenticationError, kafkaConnection } from '@cdp/kafka';
import { readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { requireEnv, startKafkaBroker, stopKafkaBroker, waitServiceExit, type KafkaBroker, type SaslListeners } from '@cdp/testkit';
import { kafkaConnectionSchema, SAMPLE_WRITE_KEY, startChain, type Chain } from './testing/chain';

// The secured broker (SASL_PLAINTEXT and SASL_SSL listeners), started once when first needed:
// the harness's shared broker has none, so that its start stays as fast as before.
let secured: Promise<KafkaBroker> | undefined;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-e2e-kafka-'));
afterAll(async () => {
  if (secured) await stopKafkaBroker(await secured);
  fs.rmSync(scratch, { recursive: true, force: true });
});
async function securedListeners(): Promise<SaslListeners> {
  secured ??= startKafkaBroker({ dir: scratch, name: 'kafka-secured', secured: true });
  return (await secured).sasl!;
}

/** TLS verified against the broker's CA, SCRAM-SHA-512 with its user. */
async function tlsScramEnv(): Promise<Record<string, string>> {
  const sasl = await securedListeners();
  return {
    KAFKA_BROKERS: sasl.tlsBrokers,
    KAFKA_SSL: 'true',
    KAFKA_SSL_CA_FILE: sasl.caFile,
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: sasl.username,
    KAFKA_SASL_PASSWORD: sasl.password,
  };
}

/** How the services and the test's own clients reach the broker: the env of the Kafka fragment. */
type Listener = { name: string; env: () => Promise<Record<string, string>> };
const LISTENERS: Listener[] = [
  { name: 'PLAINTEXT', env: async () => ({ KAFKA_BROKERS: requireEnv('KAFKA_BROKERS') }) },
  { name: 'TLS + SASL SCRAM-SHA-512', env: tlsScramEnv },
];
describe.each(LISTENERS)('SDK → tapi → dedup (real processes, real broker, $name)', (listener) => {
  let chain: Chain | undefined;
  afterAll(() => chain?.stop());

  it('delivers every event once to cdp.deduped even when the client sends the batch twice', async () => {
    chain = await startChain(['tapi', 'dedup'], { label: 'e2e', partitions: 2, kafkaEnv: await listener.env() });
    const tapiUrl = chain.members.tapi!.url;

    // The same messageIds sent in two batches: what a client retry after a lost response does.
    const events = Array.from({ length: 30 }, (_, i) => ({
      userId: `user-${i % 5}`,
      event: 'Order Completed',
      messageId: `e2e-${i}`,
      properties: { orderId: `o-${i}`, total: i },
    }));
    for (let attempt = 0; attempt < 2; attempt++) {
      const analytics = new Analytics({ writeKey: SAMPLE_WRITE_KEY, host: tapiUrl, flushAt: 15, maxRetries: 0 });
      for (const e of events) analytics.track(e);
      await analytics.closeAndFlush({ timeout: 10_000 });
    }

    const got = await readTopic(chain.kafka, chain.topics.deduped, events.length, {
      quietMs: 3_000,
      timeoutMs: 60_000,
      decode: (m) => decodeEnvelope(m.value),
    });

    expect(got).toHaveLength(events.length);
    expect(new Set(got.map((g) => g.messageId)).size).toBe(events.length);
    for (const envelope of got) {
      const sent = events.find((e) => e.messageId === envelope.messageId)!;
      expect(envelope.sourceId).toBe('server');
      expect(envelope.message).toMatchObject({ type: 'track', event: sent.event, userId: sent.userId, properties: sent.properties });
      expect(envelope.message.context).toMatchObject({ library: { name: '@segment/analytics-node' } });
      expect(Date.parse(envelope.receivedAt)).not.toBeNaN();
    }
  });
});

describe('SDK → tapi → dedup with wrong SASL credentials', () => {
  let chain: Chain | undefined;
  afterAll(() => chain?.stop());

  it('tapi and dedup stop at start naming the SASL failure, and never print the password', async () => {
    const wrongPassword = `wrong-${Date.now()}-password`;
    chain = await startChain(['tapi', 'dedup'], {
      label: 'e2e-badauth',
      kafkaEnv: { ...(await tlsScramEnv()), KAFKA_SASL_PASSWORD: wrongPassword },
      // Debug logs too must not carry it.
      env: { LOG_LEVEL: 'debug' },
      ready: false,
      captureOutput: true,
    });
    const [tapi, dedup] = [chain.members.tapi!.process, chain.members.dedup!.process];
    const codes = await Promise.all([waitServiceExit(tapi, 30_000), waitServiceExit(dedup, 30_000)]);
    expect(codes).toEqual([1, 1]);
    for (const proc of [tapi, dedup]) {
      const output = proc.output();
      expect(output).toContain(`${proc.name} failed to start`);
      expect(output).toContain('SASL SCRAM SHA512 authentication failed');
      expect(output).not.toContain(wrongPassword);
    }
  });
});

describe('kafkaConnection against the secured broker', () => {
  // The refused connections below are expected: their warnings would only be noise.
  const quiet = createLogger({ name: 'e2e-connection', level: 'silent' });

  /** Connects an admin client with this env, lists the topics, and answers what happened. */
  async function connectWith(env: Record<string, string>): Promise<'connected' | Error> {
    const admin = createKafka({
      ...kafkaConnection(loadConfig(kafkaConnectionSchema, env)),
      clientId: 'e2e-connection',
      logger: quiet,
    }).admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return 'connected';
    } catch (error) {
      return error as Error;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  it('verifies the TLS certificate: without KAFKA_SSL_CA_FILE the broker is not trusted', async () => {
    const { KAFKA_SSL_CA_FILE: _, ...withoutCa } = await tlsScramEnv();
    const result = await connectWith(withoutCa);
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toContain('unable to verify the first certificate');
  });

  it('SCRAM-SHA-256 over TLS, and PLAIN without TLS', async () => {
    const sasl = await securedListeners();
    const user = { KAFKA_SASL_USERNAME: sasl.username, KAFKA_SASL_PASSWORD: sasl.password };
    expect(await connectWith({ ...(await tlsScramEnv()), KAFKA_SASL_MECHANISM: 'scram-sha-256' })).toBe('connected');
    expect(await connectWith({ KAFKA_BROKERS: sasl.brokers, KAFKA_SASL_MECHANISM: 'plain', ...user })).toBe('connected');
  });

  it('a wrong password is an authentication error naming the mechanism, without the password', async () => {
    const result = await connectWith({ ...(await tlsScramEnv()), KAFKA_SASL_PASSWORD: 'not-the-password' });
    expect(isKafkaAuthenticationError(result)).toBe(true);
    expect((result as Error).message).toContain('SASL SCRAM SHA512 authentication failed');
    expect((result as Error).message).not.toContain('not-the-password');
  });
});
