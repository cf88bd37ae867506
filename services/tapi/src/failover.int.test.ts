import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createKafka } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { metricValue, sleep, startKafkaBroker, stopProcess, type KafkaBroker } from '@cdp/testkit';
import { startMirrorMaker, stopMirrorMaker, type MirrorMaker } from '@cdp/testkit/dist/mirror-maker';
import {
  createTapiTestEnv,
  EnvelopeCollector,
  metrics,
  restartKafkaBroker,
  startLoad,
  waitReady,
  type InProcessTapi,
  type TapiTestEnv,
} from './testing/harness';

async function until(cond: () => boolean, ms: number, what: string, state: () => string = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${state()}`);
    await sleep(100);
  }
}

describe('multi-cluster failover with MirrorMaker 2 (private brokers)', () => {
  let dir: string;
  let primary: KafkaBroker | undefined;
  let secondary: KafkaBroker | undefined;
  let mm: MirrorMaker | undefined;
  let env: TapiTestEnv | undefined;
  let collector: EnvelopeCollector | undefined;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapi-failover-'));
    [primary, secondary] = await Promise.all([startKafkaBroker({ dir, name: 'kafka-p' }), startKafkaBroker({ dir, name: 'kafka-s' })]);
  });
  afterAll(async () => {
    await collector?.stop().catch(() => undefined);
    await env?.close();
    if (mm) await stopMirrorMaker(mm);
    for (const b of [primary, secondary]) if (b) await stopProcess(b.process.pid, 15_000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('moves to the secondary when the primary stops, back when it returns; every 200 reaches the primary', async () => {
    env = await createTapiTestEnv('failover', { brokers: primary!.brokers, keepWarnings: true });
    // Same topics (and partition counts) on the secondary.
    const kafka2 = createKafka({ brokers: [secondary!.brokers], clientId: 'tapi-test', logger: env.logger });
    await createTestTopics(kafka2, env.prefix, { partitions: 3 });
    mm = await startMirrorMaker({
      dir: path.join(dir, 'mm2'),
      source: secondary!.brokers,
      target: primary!.brokers,
      topics: env.topics.ingest.replace(/\./g, '\\.'),
    });

    const runtimeFile = path.join(env.dir, 'runtime.json');
    fs.writeFileSync(runtimeFile, '{"cluster":"auto"}');
    let tapi: InProcessTapi = await env.start({
      KAFKA_SECONDARY_BROKERS: secondary!.brokers,
      TAPI_RUNTIME_FILE: runtimeFile,
      WORKSPACE_POLL_INTERVAL_MS: '200',
      PUBLISH_TIMEOUT_MS: '800',
      KAFKA_PROBE_INTERVAL_MS: '300',
      FAILOVER_ERROR_THRESHOLD: '2',
      FAILBACK_PROBE_INTERVAL_MS: '500',
    });
    await waitReady(tapi);
    expect(tapi.publisher.activeCluster).toBe('primary');
    const state = () => `tapi: ${tapi.publisher.describe()}\nlast warnings:\n${env!.recentLogs()}`;
    const load = startLoad(() => tapi.url, { label: 'fo', batchSize: 5, intervalMs: 15, maxRequests: 6_000, maxMs: 170_000 });

    await load.acked(100);
    await stopProcess(primary!.process.pid, 15_000);
    await until(() => tapi.publisher.activeCluster === 'secondary', 30_000, 'failover to the secondary', state);
    const onSecondary = () => metricValue(text, 'cdp_tapi_events_accepted_total', { stored: 'secondary' });
    let text = await metrics(tapi);
    const before = onSecondary();
    await load.acked(100);
    text = await metrics(tapi);
    expect(onSecondary()).toBeGreaterThan(before);

    primary = await restartKafkaBroker(primary!);
    await until(() => tapi.publisher.activeCluster === 'primary', 90_000, 'fail back to the primary', state);
    await load.acked(100);

    // Operator override through the runtime file, without restart.
    fs.writeFileSync(runtimeFile, '{"cluster":"secondary"}');
    await until(() => tapi.publisher.activeCluster === 'secondary', 10_000, 'forced secondary', state);
    await load.acked(50);
    fs.writeFileSync(runtimeFile, '{"cluster":"primary"}');
    await until(() => tapi.publisher.activeCluster === 'primary', 10_000, 'forced primary', state);
    await load.acked(Math.max(50, 600 - load.result.acked.length));
    const result = await load.stop();
    await until(() => tapi.spool.depth === 0, 60_000, 'spool drained', state);

    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
    const end = Date.now() + 120_000;
    let missing = result.acked;
    while (Date.now() < end) {
      missing = result.acked.filter((id) => !collector!.byId.has(id));
      if (missing.length === 0) break;
      await sleep(500);
    }
    expect(result.acked.length).toBeGreaterThan(500);
    expect(missing.slice(0, 20)).toEqual([]);
    text = await metrics(tapi);
    expect(metricValue(text, 'cdp_tapi_cluster_switches_total', { to: 'secondary' })).toBeGreaterThanOrEqual(2);
    expect(metricValue(text, 'cdp_tapi_cluster_switches_total', { to: 'primary' })).toBeGreaterThanOrEqual(2);
    tapi = undefined as unknown as InProcessTapi;
  });
});
