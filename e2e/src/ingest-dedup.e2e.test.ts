// SDK → tapi → cdp.ingest → dedup → cdp.deduped, all real: the unchanged Segment Node SDK,
// the services as processes, a real Kafka broker. A client retry (the same batch sent twice)
// must come out of dedup once, with the envelope tapi built.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Analytics } from '@segment/analytics-node';
import { decodeEnvelope } from '@cdp/events';
import { createKafka } from '@cdp/kafka';
import { createTestTopics, readTopic } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import {
  freePort,
  REPO_ROOT,
  requireEnv,
  startServiceProcess as startService,
  testTopicPrefix,
  waitServiceReady as waitReady,
  type ServiceProcess,
} from '@cdp/testkit';

const logger = createLogger({ name: 'e2e', level: 'warn' });
const WRITE_KEY = 'wk_server_sample_0001'; // source `server` of config/workspace.sample.yaml

describe('SDK → tapi → dedup (real processes, real broker)', () => {
  const procs: ServiceProcess[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('delivers every event once to cdp.deduped even when the client sends the batch twice', async () => {
    const brokers = requireEnv('KAFKA_BROKERS');
    const prefix = testTopicPrefix('e2e');
    const kafka = createKafka({ brokers: [brokers], clientId: 'e2e', logger });
    const topics = await createTestTopics(kafka, prefix, { partitions: 2 });

    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-e2e-'));
    dirs.push(tmp);
    const common = { KAFKA_BROKERS: brokers, CDP_TOPIC_PREFIX: prefix };
    const port = await freePort();
    const tapi = await startService('tapi', {
      ...common,
      PORT: String(port),
      HOST: '127.0.0.1',
      CDP_WORKSPACE_FILE: path.join(REPO_ROOT, 'config', 'workspace.sample.yaml'),
      CDP_SAMPLE_HMAC_SECRET: 'e2e-only-secret',
      SPOOL_DIR: path.join(tmp, 'spool'),
    });
    procs.push(tapi);
    const dedup = await startService('dedup', {
      ...common,
      DEDUP_DATA_DIR: path.join(tmp, 'dedup'),
      DEDUP_GROUP_ID: `${prefix}dedup`,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '1000',
    });
    procs.push(dedup);
    await Promise.all([waitReady(tapi), waitReady(dedup)]);

    // The same messageIds sent in two batches: what a client retry after a lost response does.
    const events = Array.from({ length: 30 }, (_, i) => ({
      userId: `user-${i % 5}`,
      event: 'Order Completed',
      messageId: `e2e-${i}`,
      properties: { orderId: `o-${i}`, total: i },
    }));
    for (let attempt = 0; attempt < 2; attempt++) {
      const analytics = new Analytics({ writeKey: WRITE_KEY, host: `http://127.0.0.1:${port}`, flushAt: 15, maxRetries: 0 });
      for (const e of events) analytics.track(e);
      await analytics.closeAndFlush({ timeout: 10_000 });
    }

    const got = await readTopic(kafka, topics.deduped, events.length, { quietMs: 3_000, timeoutMs: 60_000, decode: (m) => decodeEnvelope(m.value) });

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
