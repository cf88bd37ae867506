// pnpm bench:dedup — throughput and memory of one dedup process with 10 M keys stored.
// Starts its own Kafka broker, bulk-loads the stores, measures a same-run baseline (a plain
// consume → produce pass-through on the same broker), then dedup itself; prints the figures and
// one JSON line. Traffic stays on 127.0.0.1; every phase is bounded in count and time.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { messageKey } from '@cdp/events';
import { BatchingProducer, createKafka, ensureTopics, topicSpecs, type OutboundMessage } from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { cpuSeconds, freePort, sampleRss, startKafkaBroker, stopKafkaBroker } from '@cdp/testkit';
import { PartitionStore } from '../store';

const STORED_KEYS = Number(process.env.BENCH_STORED_KEYS ?? 10_000_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 4);
const DUP_RATE = 0.1;
const TIME_LIMIT_MS = 240_000;
const TARGET_EVENTS_PER_S = 20_000;
const TARGET_RSS_BYTES = 512 * 1024 * 1024;
const MAIN = path.join(__dirname, '..', 'main.js');
const logger = createLogger({ name: 'bench', level: 'warn' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function envelopeValue(sourceId: string, messageId: string, receivedAt: string): string {
  // A realistic ~450-byte envelope of a track call.
  return JSON.stringify({
    v: 1,
    sourceId,
    messageId,
    receivedAt,
    message: {
      type: 'track',
      messageId,
      userId: `user-${messageId.slice(-6)}`,
      event: 'Order Completed',
      properties: { orderId: messageId, total: 42.5, currency: 'EUR', items: 3 },
      context: { library: { name: '@segment/analytics-node', version: '3.1.0' }, ip: '127.0.0.1' },
      timestamp: receivedAt,
      receivedAt,
    },
  });
}

async function bulkLoad(dataDir: string, inputTopic: string): Promise<number> {
  const started = Date.now();
  const perPartition = Math.ceil(STORED_KEYS / PARTITIONS);
  const receivedAtMs = Date.now() - 3_600_000;
  await Promise.all(
    Array.from({ length: PARTITIONS }, async (_, p) => {
      const store = await PartitionStore.open(path.join(dataDir, `${inputTopic}-${p}`), { windowMs: 28 * 86_400_000, minBloomCapacity: 1_000 });
      for (let i = 0; i < perPartition; i += 20_000) {
        const n = Math.min(20_000, perPartition - i);
        await store.record(Array.from({ length: n }, (_, j) => ({ key: `preloaded:p${p}-${i + j}`, receivedAtMs })), -1);
      }
      await store.close();
    }),
  );
  return (Date.now() - started) / 1000;
}

function makeInput(): OutboundMessage[] {
  const now = new Date().toISOString();
  const out: OutboundMessage[] = [];
  let i = 0;
  while (out.length < EVENTS) {
    const id = `bench-${i++}`;
    out.push({ key: messageKey('web', id), value: envelopeValue('web', id, now) });
    if (Math.random() < DUP_RATE && out.length < EVENTS) {
      const j = Math.floor(Math.random() * i);
      out.push({ key: messageKey('web', `bench-${j}`), value: envelopeValue('web', `bench-${j}`, now) });
    }
  }
  return out;
}

async function produceAll(producer: BatchingProducer, topic: string, messages: OutboundMessage[]): Promise<number> {
  const started = Date.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < messages.length; i += 1_000) {
    inFlight.push(producer.send(topic, messages.slice(i, i + 1_000)));
    if (inFlight.length >= 20) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
  return messages.length / ((Date.now() - started) / 1000);
}

/** Baseline: the same consume → produce hop with no dedup work (at-least-once, batched). */
async function passThroughRate(kafka: ReturnType<typeof createKafka>, from: string, to: string): Promise<number> {
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const consumer = kafka.consumer({ groupId: `bench-passthrough-${Date.now()}` });
  let count = 0;
  let first = 0;
  let last = 0;
  await consumer.connect();
  await consumer.subscribe({ topics: [from], fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async ({ batch }) => {
      if (!first) first = Date.now();
      await producer.send(
        to,
        batch.messages.map((m) => ({ key: m.key?.toString() ?? null, value: m.value, partition: batch.partition })),
      );
      count += batch.messages.length;
      last = Date.now();
    },
  });
  const deadline = Date.now() + TIME_LIMIT_MS / 4;
  while (count < EVENTS && Date.now() < deadline) await sleep(100);
  await consumer.disconnect();
  await producer.disconnect();
  return count / Math.max(0.001, (last - first) / 1000);
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-dedup-'));
  const broker = await startKafkaBroker({ dir: work, name: 'bench-kafka' });
  try {
    const kafka = createKafka({ brokers: [broker.brokers], clientId: 'bench', logger });
    const admin = kafka.admin();
    await admin.connect();
    const specs = topicSpecs({ prefix: 'bench.', replicationFactor: 1, defaultPartitions: PARTITIONS });
    const passthrough = { ...specs.identified, name: 'bench.passthrough' };
    await ensureTopics(admin, [specs.ingest, specs.deduped, specs.dlq, passthrough]);
    await admin.disconnect();

    const dataDir = path.join(work, 'stores');
    console.log(`bulk-loading ${STORED_KEYS.toLocaleString()} keys into ${PARTITIONS} partition stores...`);
    const loadSeconds = await bulkLoad(dataDir, specs.ingest.name);
    console.log(`  loaded in ${loadSeconds.toFixed(1)} s`);

    const producer = new BatchingProducer(kafka, { logger });
    await producer.connect();
    const input = makeInput();
    const produceRate = await produceAll(producer, specs.ingest.name, input);
    await producer.disconnect();
    console.log(`raw produce (acks=all): ${Math.round(produceRate)} events/s`);
    const baseline = await passThroughRate(kafka, specs.ingest.name, passthrough.name);
    console.log(`baseline consume→produce pass-through: ${Math.round(baseline)} events/s`);

    const opsPort = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        KAFKA_BROKERS: broker.brokers,
        CDP_TOPIC_PREFIX: 'bench.',
        DEDUP_DATA_DIR: dataDir,
        OPS_PORT: String(opsPort),
        LOG_LEVEL: 'warn',
        DEDUP_PARTITIONS_CONCURRENTLY: String(PARTITIONS),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const rss = sampleRss(child.pid!);
    const startedAt = Date.now();
    let done = 0;
    let firstProgressAt = 0;
    let cpuAtFirst = 0;
    let brokerCpuAtFirst = 0;
    while (done < EVENTS && Date.now() - startedAt < TIME_LIMIT_MS) {
      await sleep(200);
      done = await Promise.all([
        metric(opsPort, 'cdp_dedup_events_accepted_total'),
        metric(opsPort, 'cdp_dedup_duplicates_total'),
      ])
        .then(([a, d]) => a + d)
        .catch(() => 0);
      if (done > 0 && !firstProgressAt) {
        firstProgressAt = Date.now();
        cpuAtFirst = cpuSeconds(child.pid!);
        brokerCpuAtFirst = cpuSeconds(broker.process.pid);
      }
    }
    const finishedAt = Date.now();
    const dedupCpu = cpuSeconds(child.pid!) - cpuAtFirst;
    const brokerCpu = cpuSeconds(broker.process.pid) - brokerCpuAtFirst;
    const peakRss = rss.stop();
    const takeoverSeconds = (firstProgressAt - startedAt) / 1000;
    const txnCount = await metric(opsPort, 'cdp_dedup_transaction_duration_seconds_count');
    const txnSum = await metric(opsPort, 'cdp_dedup_transaction_duration_seconds_sum');
    const duplicates = await metric(opsPort, 'cdp_dedup_duplicates_total');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));

    const seconds = (finishedAt - firstProgressAt) / 1000;
    const rate = done / seconds;
    console.log(`dedup: ${done} events (${duplicates} duplicates dropped) in ${seconds.toFixed(2)} s = ${Math.round(rate)} events/s`);
    console.log(`  takeover incl. filter build over ${STORED_KEYS.toLocaleString()} keys: ${takeoverSeconds.toFixed(1)} s`);
    console.log(`  peak RSS ${(peakRss / 1048576).toFixed(0)} MB; transactions ${txnCount}, mean ${((txnSum / Math.max(1, txnCount)) * 1000).toFixed(1)} ms`);
    console.log(`  CPU while processing: dedup ${((dedupCpu / seconds) * 100).toFixed(0)} %, broker ${((brokerCpu / seconds) * 100).toFixed(0)} % (of one core; 2 cores total)`);
    console.log(`  ratio to pass-through baseline: ${(rate / baseline).toFixed(2)}`);
    if (rate < TARGET_EVENTS_PER_S) {
      const where = dedupCpu / seconds > 0.85 ? 'the dedup process is CPU-bound on its one event loop' : brokerCpu / seconds > 0.85 ? 'the broker is CPU-bound (same 2 cores)' : 'waiting on transaction round-trips (neither process saturates a core)';
      console.log(`  TARGET MISSED (${TARGET_EVENTS_PER_S} events/s): ${where}`);
    }
    if (peakRss > TARGET_RSS_BYTES) console.log(`  TARGET MISSED: RSS above ${TARGET_RSS_BYTES / 1048576} MB`);
    console.log(
      JSON.stringify({
        bench: 'dedup',
        value: Math.round(rate),
        unit: 'events/s',
        baseline: Math.round(baseline),
        ratio: Number((rate / baseline).toFixed(2)),
        rss_mb: Math.round(peakRss / 1048576),
        stored_keys: STORED_KEYS,
        produce_baseline: Math.round(produceRate),
      }),
    );
  } finally {
    await stopKafkaBroker(broker);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
