// pnpm bench:dedup — one dedup process on its own Kafka broker, three phases (BENCH_PHASES,
// default all; each prints its figures and one JSON line):
// - throughput: 10 M keys bulk-loaded in the stores, against a same-run consume → produce
//   pass-through baseline;
// - drain: a backlog of >= 1 GB of ~600-byte events (BENCH_DRAIN_MB) produced while dedup is
//   down, then drained by a process started on an empty volume; raw produce rate as baseline;
// - repair: an output topic holding 10 M keys (BENCH_REPAIR_KEYS) and an empty volume (a lost
//   volume): time until every partition is taken over and repaired.
// Peak RSS of the dedup process in each. Traffic stays on 127.0.0.1; every phase is bounded in
// count and time.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { messageKey } from '@cdp/events';
import {
  BatchingProducer,
  createKafka,
  ensureTopics,
  HEADER_IN_OFFSET,
  HEADER_IN_PARTITION,
  splitByBytes,
  topicSpecs,
  type OutboundMessage,
} from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { cpuSeconds, freePort, metricValue, sampleRss, sleep, startKafkaBroker, stopKafkaBroker, type KafkaBroker } from '@cdp/testkit';
import { PartitionStore } from '../store';

const STORED_KEYS = Number(process.env.BENCH_STORED_KEYS ?? 10_000_000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 200_000);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 4);
const DUP_RATE = 0.1;
const PHASES = new Set((process.env.BENCH_PHASES ?? 'throughput,drain,repair').split(','));
const DRAIN_MB = Number(process.env.BENCH_DRAIN_MB ?? 1024);
const DRAIN_EVENT_BYTES = 600;
const DRAIN_TIME_LIMIT_MS = Number(process.env.BENCH_DRAIN_TIME_LIMIT_MS ?? 1_200_000);
const REPAIR_KEYS = Number(process.env.BENCH_REPAIR_KEYS ?? 10_000_000);
const REPAIR_EVENT_BYTES = Number(process.env.BENCH_REPAIR_EVENT_BYTES ?? 600);
const REPAIR_TIME_LIMIT_MS = Number(process.env.BENCH_REPAIR_TIME_LIMIT_MS ?? 1_800_000);
const TIME_LIMIT_MS = 240_000;
const TARGET_EVENTS_PER_S = 20_000;
const TARGET_RSS_BYTES = 512 * 1024 * 1024;
const MAIN = path.join(__dirname, '..', 'main.js');
// The image runs Node with jemalloc preloaded (Dockerfile); glibc's malloc keeps LevelDB's
// compaction garbage as fragmented heap. BENCH_DEDUP_MALLOC=glibc measures without it.
const MALLOC = process.env.BENCH_DEDUP_MALLOC ?? 'jemalloc';
const JEMALLOC_CONF = /MALLOC_CONF=(\S+)/.exec(fs.readFileSync(path.join(__dirname, '../../../../Dockerfile'), 'utf8'))?.[1] ?? '';
const JEMALLOC_PATHS = [
  '/usr/local/lib/libjemalloc.so.2',
  `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`,
];
const logger = createLogger({ name: 'bench', level: 'warn' });

/** An envelope padded to about `bytes` (drain and repair phases). */
function paddedEnvelopeValue(sourceId: string, messageId: string, receivedAt: string, bytes: number): string {
  const base = envelopeValue(sourceId, messageId, receivedAt);
  return base.length >= bytes ? base : base.replace('"items":3', `"items":3,"pad":"${'x'.repeat(bytes - base.length - 9)}"`);
}

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
      const store = await PartitionStore.open(path.join(dataDir, `${inputTopic}-${p}`), {
        windowMs: 28 * 86_400_000,
        minBloomCapacity: 1_000,
      });
      for (let i = 0; i < perPartition; i += 20_000) {
        const n = Math.min(20_000, perPartition - i);
        await store.record(
          Array.from({ length: n }, (_, j) => ({ key: `preloaded:p${p}-${i + j}`, receivedAtMs })),
          -1,
        );
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
  return metricValue(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), name);
}

async function throughputPhase(kafka: ReturnType<typeof createKafka>, broker: KafkaBroker, work: string): Promise<void> {
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

  const run = await startDedupProcess(broker.brokers, 'bench.', dataDir);
  const { child, opsPort, rss } = run;
  const startedAt = Date.now();
  let done = 0;
  let firstProgressAt = 0;
  let cpuAtFirst = 0;
  let brokerCpuAtFirst = 0;
  while (done < EVENTS && Date.now() - startedAt < TIME_LIMIT_MS) {
    await sleep(200);
    done = await Promise.all([metric(opsPort, 'cdp_dedup_events_accepted_total'), metric(opsPort, 'cdp_dedup_duplicates_total')])
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
  run.breakdown.stop();
  await run.stop();

  const seconds = (finishedAt - firstProgressAt) / 1000;
  const rate = done / seconds;
  console.log(`dedup: ${done} events (${duplicates} duplicates dropped) in ${seconds.toFixed(2)} s = ${Math.round(rate)} events/s`);
  console.log(`  takeover incl. filter build over ${STORED_KEYS.toLocaleString()} keys: ${takeoverSeconds.toFixed(1)} s`);
  console.log(
    `  peak RSS ${(peakRss / 1048576).toFixed(0)} MB; transactions ${txnCount}, mean ${((txnSum / Math.max(1, txnCount)) * 1000).toFixed(1)} ms`,
  );
  console.log(
    `  CPU while processing: dedup ${((dedupCpu / seconds) * 100).toFixed(0)} %, broker ${((brokerCpu / seconds) * 100).toFixed(0)} % (of one core; 2 cores total)`,
  );
  console.log(`  ratio to pass-through baseline: ${(rate / baseline).toFixed(2)}`);
  if (rate < TARGET_EVENTS_PER_S) {
    const where =
      dedupCpu / seconds > 0.85
        ? 'the dedup process is CPU-bound on its one event loop'
        : brokerCpu / seconds > 0.85
          ? 'the broker is CPU-bound (same 2 cores)'
          : 'waiting on transaction round-trips (neither process saturates a core)';
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
}

/** At the RSS peak: anonymous memory (heap, buffers) and file pages (LevelDB's mmapped tables). */
function rssBreakdown(pid: number, everyMs = 500): { stop(): string } {
  let peak = { rss: 0, anon: 0, file: 0 };
  const timer = setInterval(() => {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
      const now = { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
      if (now.rss > peak.rss) peak = now;
    } catch {
      // process gone
    }
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return `anon ${mb(peak.anon)} MB + file ${mb(peak.file)} MB at the peak`;
    },
  };
}

interface DedupRun {
  child: ReturnType<typeof spawn>;
  opsPort: number;
  rss: { stop(): number };
  breakdown: { stop(): string };
  stop(): Promise<void>;
}

async function startDedupProcess(brokers: string, prefix: string, dataDir: string): Promise<DedupRun> {
  const opsPort = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      KAFKA_BROKERS: brokers,
      CDP_TOPIC_PREFIX: prefix,
      DEDUP_DATA_DIR: dataDir,
      OPS_PORT: String(opsPort),
      LOG_LEVEL: 'warn',
      DEDUP_PARTITIONS_CONCURRENTLY: String(PARTITIONS),
      ...allocatorEnv(),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const rss = sampleRss(child.pid!);
  return {
    child,
    opsPort,
    rss,
    breakdown: rssBreakdown(child.pid!),
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** The dedup process's allocator, as in the image unless BENCH_DEDUP_MALLOC=glibc. */
function allocatorEnv(): Record<string, string> {
  if (MALLOC === 'glibc') return {};
  const lib = JEMALLOC_PATHS.find((p) => fs.existsSync(p));
  if (!lib) {
    console.log('  jemalloc not found (apt-get install libjemalloc2): dedup runs on glibc malloc, unlike the image');
    return {};
  }
  return { LD_PRELOAD: lib, MALLOC_CONF: JEMALLOC_CONF };
}

/** Sends `count` messages made by `make(i)` in bounded slices (never all in memory). */
async function produceGenerated(
  producer: BatchingProducer,
  topic: string,
  count: number,
  make: (i: number) => OutboundMessage,
): Promise<number> {
  const started = Date.now();
  const inFlight: Promise<void>[] = [];
  const sliceCount = 2_000;
  for (let i = 0; i < count; i += sliceCount) {
    const slice = Array.from({ length: Math.min(sliceCount, count - i) }, (_, j) => make(i + j));
    for (const part of splitByBytes(slice, 512 * 1024)) inFlight.push(producer.send(topic, part));
    if (inFlight.length >= 16) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
  return count / ((Date.now() - started) / 1000);
}

const mb = (bytes: number) => Math.round(bytes / 1048576);

async function drainPhase(kafka: ReturnType<typeof createKafka>, brokers: string, work: string): Promise<void> {
  const prefix = 'drain.';
  const admin = kafka.admin();
  await admin.connect();
  const specs = topicSpecs({ prefix, replicationFactor: 1, defaultPartitions: PARTITIONS });
  await ensureTopics(admin, [specs.ingest, specs.deduped, specs.dlq]);
  await admin.disconnect();
  const events = Math.ceil((DRAIN_MB * 1024 * 1024) / DRAIN_EVENT_BYTES);
  const receivedAt = new Date().toISOString();
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  console.log(`drain: producing ${events.toLocaleString()} events of ~${DRAIN_EVENT_BYTES} bytes (${DRAIN_MB} MB) while dedup is down...`);
  const produceRate = await produceGenerated(producer, specs.ingest.name, events, (i) => {
    const id = `drain-${i}`;
    return { key: messageKey('web', id), value: paddedEnvelopeValue('web', id, receivedAt, DRAIN_EVENT_BYTES) };
  });
  await producer.disconnect();
  console.log(`  raw produce (acks=all): ${Math.round(produceRate)} events/s`);

  const run = await startDedupProcess(brokers, prefix, path.join(work, 'drain-stores'));
  const startedAt = Date.now();
  let done = 0;
  let firstProgressAt = 0;
  while (done < events && Date.now() - startedAt < DRAIN_TIME_LIMIT_MS) {
    await sleep(500);
    done = await metric(run.opsPort, 'cdp_dedup_events_accepted_total').catch(() => done);
    if (done > 0 && !firstProgressAt) firstProgressAt = Date.now();
  }
  const finishedAt = Date.now();
  const peakRss = run.rss.stop();
  await run.stop();
  const seconds = (finishedAt - firstProgressAt) / 1000;
  const rate = done / seconds;
  console.log(
    `  dedup drained ${done.toLocaleString()} of ${events.toLocaleString()} events in ${seconds.toFixed(1)} s = ${Math.round(rate)} events/s (ratio to raw produce ${(rate / produceRate).toFixed(2)})`,
  );
  console.log(
    `  peak RSS ${mb(peakRss)} MB (${run.breakdown.stop()})${peakRss > TARGET_RSS_BYTES ? ` — TARGET MISSED (${mb(TARGET_RSS_BYTES)} MB)` : ''}`,
  );
  if (done < events) console.log('  NOT DRAINED within the time limit');
  console.log(
    JSON.stringify({
      bench: 'dedup-drain',
      value: Math.round(rate),
      unit: 'events/s',
      events: done,
      backlog_mb: DRAIN_MB,
      produce_baseline: Math.round(produceRate),
      ratio: Number((rate / produceRate).toFixed(2)),
      rss_mb: mb(peakRss),
    }),
  );
}

async function repairPhase(kafka: ReturnType<typeof createKafka>, brokers: string, work: string): Promise<void> {
  const prefix = 'repair.';
  const admin = kafka.admin();
  await admin.connect();
  const specs = topicSpecs({ prefix, replicationFactor: 1, defaultPartitions: PARTITIONS });
  await ensureTopics(admin, [specs.ingest, specs.deduped, specs.dlq]);
  await admin.disconnect();
  const perPartition = Math.ceil(REPAIR_KEYS / PARTITIONS);
  const receivedAt = new Date().toISOString();
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  console.log(
    `repair: writing ${(perPartition * PARTITIONS).toLocaleString()} records of ~${REPAIR_EVENT_BYTES} bytes to ${specs.deduped.name} (what dedup published before its volume was lost)...`,
  );
  // Partition by partition: each output record as dedup writes it (same partition as its input,
  // cdp-in-partition / cdp-in-offset headers).
  const writeRate = await produceGenerated(producer, specs.deduped.name, perPartition * PARTITIONS, (i) => {
    const p = i % PARTITIONS;
    const n = Math.floor(i / PARTITIONS);
    const id = `repair-${p}-${n}`;
    return {
      key: messageKey('web', id),
      value: paddedEnvelopeValue('web', id, receivedAt, REPAIR_EVENT_BYTES),
      partition: p,
      headers: { [HEADER_IN_PARTITION]: String(p), [HEADER_IN_OFFSET]: String(n) },
    };
  });
  console.log(`  written at ${Math.round(writeRate)} records/s`);
  // One input event per partition: a partition is taken over (fenced, repaired) at its first chunk.
  await producer.send(
    specs.ingest.name,
    Array.from({ length: PARTITIONS }, (_, p) => ({
      key: messageKey('web', `trigger-${p}`),
      value: envelopeValue('web', `trigger-${p}`, receivedAt),
      partition: p,
    })),
  );
  await producer.disconnect();

  const run = await startDedupProcess(brokers, prefix, path.join(work, 'repair-stores'));
  const startedAt = Date.now();
  const target = perPartition * PARTITIONS;
  let repaired = 0;
  let takeovers = 0;
  while ((repaired < target || takeovers < PARTITIONS) && Date.now() - startedAt < REPAIR_TIME_LIMIT_MS) {
    await sleep(500);
    [repaired, takeovers] = await Promise.all([
      metric(run.opsPort, 'cdp_dedup_repaired_keys_total'),
      metric(run.opsPort, 'cdp_dedup_rebuild_duration_seconds_count'),
    ]).catch(() => [repaired, takeovers]);
  }
  const seconds = (Date.now() - startedAt) / 1000;
  const peakRss = run.rss.stop();
  const cpu = cpuSeconds(run.child.pid!);
  await run.stop();
  console.log(
    `  repaired ${repaired.toLocaleString()} keys over ${PARTITIONS} partitions in ${seconds.toFixed(1)} s from process start (${Math.round(repaired / seconds)} keys/s, ${cpu.toFixed(0)} CPU s)`,
  );
  console.log(
    `  peak RSS ${mb(peakRss)} MB (${run.breakdown.stop()})${peakRss > TARGET_RSS_BYTES ? ` — TARGET MISSED (${mb(TARGET_RSS_BYTES)} MB)` : ''}`,
  );
  if (repaired < target) console.log('  NOT REPAIRED within the time limit');
  console.log(
    JSON.stringify({
      bench: 'dedup-repair',
      value: Number(seconds.toFixed(1)),
      unit: 's',
      keys: repaired,
      record_bytes: REPAIR_EVENT_BYTES,
      rss_mb: mb(peakRss),
    }),
  );
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-dedup-'));
  const broker = await startKafkaBroker({ dir: work, name: 'bench-kafka' });
  try {
    const kafka = createKafka({ brokers: [broker.brokers], clientId: 'bench', logger });
    if (PHASES.has('throughput')) await throughputPhase(kafka, broker, work);
    if (PHASES.has('drain')) await drainPhase(kafka, broker.brokers, work);
    if (PHASES.has('repair')) await repairPhase(kafka, broker.brokers, work);
  } finally {
    await stopKafkaBroker(broker);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
