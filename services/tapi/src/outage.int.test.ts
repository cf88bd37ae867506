import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { metricValue, sleep, startKafkaBroker, stopProcess, waitFor, type KafkaBroker } from '@cdp/testkit';
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

describe('Kafka outage (private broker)', () => {
  let dir: string;
  let broker: KafkaBroker | undefined;
  let env: TapiTestEnv | undefined;
  let collector: EnvelopeCollector | undefined;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapi-outage-'));
    broker = await startKafkaBroker({ dir, name: 'kafka-outage' });
  });
  afterAll(async () => {
    await collector?.stop().catch(() => undefined);
    await env?.close();
    if (broker) await stopProcess(broker.process.pid, 15_000);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acknowledged event across a broker outage and a tapi restart during it', async () => {
    env = await createTapiTestEnv('outage', { brokers: broker!.brokers });
    const cfg = { PUBLISH_TIMEOUT_MS: '800', KAFKA_PROBE_INTERVAL_MS: '300' };
    let tapi: InProcessTapi | undefined = await env.start(cfg);
    await waitReady(tapi);
    const load = startLoad(() => tapi?.url, { label: 'outage', batchSize: 5, intervalMs: 15, maxRequests: 4_000, maxMs: 150_000 });

    await load.acked(100);
    await stopProcess(broker!.process.pid, 15_000); // the broker goes away under load
    // Events acknowledged while it is down wait in the spool.
    await waitFor(() => tapi!.spool.depth >= 50, 30_000);
    const spooledBeforeRestart = tapi.spool.depth;

    // Restart tapi while the broker is down: the spool survives on disk.
    const old: InProcessTapi = tapi;
    tapi = undefined;
    await old.stop();
    tapi = await env.start(cfg);
    expect(tapi.spool.depth).toBeGreaterThanOrEqual(spooledBeforeRestart);
    await load.acked(100); // by the new tapi, still without a broker

    broker = await restartKafkaBroker(broker!);
    // Load goes on while the spool drains: at least 100 more events, 600 in all.
    await load.acked(Math.max(100, 600 - load.result.acked.length));
    const result = await load.stop();

    const until = Date.now() + 90_000;
    while (tapi.spool.depth > 0 && Date.now() < until) await sleep(200);
    expect(tapi.spool.depth).toBe(0);

    collector = new EnvelopeCollector(env.kafka, env.topics.ingest);
    await collector.start();
    await collector.catchUp(60_000);
    const missing = result.acked.filter((id) => !collector!.byId.has(id));
    expect(result.acked.length).toBeGreaterThan(500);
    expect(spooledBeforeRestart).toBeGreaterThan(0);
    expect(missing).toEqual([]);
    const text = await metrics(tapi);
    expect(metricValue(text, 'cdp_tapi_spool_drained_total')).toBeGreaterThan(0);
  });
});
