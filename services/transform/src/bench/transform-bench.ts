// pnpm bench:transform — transform's stage on its own Kafka broker, in this process: the Kafka
// worker of libs/kafka (CommitAfterWorkConsumer) reads BENCH_EVENTS track envelopes from an
// identified topic and runs them through transform's FanOut — regulation lookup, a tracking plan
// (one planned event, violations omitted), one declarative transformation (rename_properties),
// routing, a destination filter rule (FQL) and a subscription condition — and hands the jobs to a
// JobSender that produces them, as JSON, to a jobs topic (the directors' RPC is measured by
// bench:director). Baseline, same run, same worker and chunking: consume → produce the raw values
// with no transform work. Third run: the same with one insert function (QuickJS sandbox) added. Bounded in count and time; traffic stays on 127.0.0.1.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobResult, RpcJobInput } from '@cdp/director-rpc';
import type { Envelope } from '@cdp/events';
import {
  BatchingProducer,
  CommitAfterWorkConsumer,
  createKafka,
  ensureTopics,
  topicSpecs,
  type Decoded,
  type OutboundMessage,
} from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { cpuSeconds, sleep, startKafkaBroker, stopKafkaBroker } from '@cdp/testkit';
import { parseWorkspace, type ConfigIssue, type WorkspaceConfig } from '@cdp/workspace';
import { decode, FanOut } from '../fan-out';
import { FunctionRegistry } from '../functions/functions';
import { loadSandboxEngine } from '../functions/sandbox';
import { ViolationSamples } from '../violations';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 4);
const TIME_LIMIT_MS = Number(process.env.BENCH_TIME_LIMIT_MS ?? 180_000);
const CHUNK = 500;
const logger = createLogger({ name: 'bench', level: 'warn' });

/** The insert function of the third run: a computed property, as a typical enrichment does. */
const BENCH_FUNCTION = `
async function onTrack(event, settings) {
  event.properties.revenueCents = Math.round((event.properties.revenue || 0) * 100);
  event.properties.channel = settings.channel;
  return event;
}`;

/** The declarative workspace, with `functions` appended to the source's transformations. */
const benchWorkspace = (functions: unknown[] = [], check?: (config: WorkspaceConfig) => ConfigIssue[]) =>
  parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        {
          id: 'web',
          name: 'Web',
          spaceId: 'main',
          writeKeys: ['wk_bench'],
          trackingPlan: {
            events: [
              {
                name: 'Order Completed',
                properties: {
                  orderId: { type: 'string', required: true },
                  total: { type: 'number', minimum: 0 },
                  currency: { type: 'string', enum: ['USD', 'EUR'] },
                  items: { type: 'integer' },
                },
              },
            ],
            enforcement: { violations: 'omit' },
          },
          transformations: [{ type: 'rename_properties', event: 'Order Completed', properties: { total: 'revenue' } }, ...functions],
        },
      ],
      destinations: [
        {
          id: 'hook',
          name: 'Hook',
          type: 'webhook',
          settings: { url: 'http://127.0.0.1:9/hook' },
          subscriptions: [{ id: 'tracks', name: 'Tracks', subscribe: 'type = "track"' }],
          filters: { rules: [{ name: 'No test users', if: 'match(userId, "test_*")', actions: [{ type: 'drop' }] }] },
        },
      ],
      connections: [{ sourceId: 'web', destinationId: 'hook' }],
    }),
    { format: 'json', check },
  );

function envelopeValue(i: number, receivedAt: string): string {
  const messageId = `bench-${i}`;
  return JSON.stringify({
    v: 1,
    sourceId: 'web',
    messageId,
    receivedAt,
    profileId: `p-${i % 5000}`,
    message: {
      type: 'track',
      messageId,
      userId: `user-${i % 5000}`,
      event: 'Order Completed',
      // Every tenth breaks the plan (omitted), so the omit path is in the mix.
      properties: { orderId: messageId, total: i % 10 === 0 ? -1 : 42.5, currency: 'EUR', items: 3 },
      context: { library: { name: '@segment/analytics-node', version: '3.1.0' }, ip: '127.0.0.1' },
      timestamp: receivedAt,
    },
  });
}

interface Run {
  events: number;
  seconds: number;
  cpu: number;
}

/** Runs one worker over the whole input topic: `work` gets each chunk; timed from its first chunk to the last event. */
async function runWorker<T>(
  kafka: ReturnType<typeof createKafka>,
  groupId: string,
  topic: string,
  dlq: string,
  decodeOne: (m: Parameters<typeof decode>[0]) => T,
  work: (items: Decoded<T>[]) => Promise<void>,
): Promise<Run> {
  let count = 0;
  let first = 0;
  let last = 0;
  const worker = new CommitAfterWorkConsumer<T>({
    kafka,
    groupId,
    topics: [topic],
    dlqTopic: dlq,
    stage: 'bench',
    logger,
    decode: decodeOne,
    handle: async (items) => {
      if (!first) first = performance.now();
      await work(items);
      count += items.length;
      last = performance.now();
    },
    maxChunkMessages: CHUNK,
    partitionsConsumedConcurrently: PARTITIONS,
    fromBeginning: true,
  });
  const cpuBefore = cpuSeconds(process.pid);
  await worker.start();
  const deadline = Date.now() + TIME_LIMIT_MS;
  while (count < EVENTS && Date.now() < deadline) await sleep(50);
  const cpu = cpuSeconds(process.pid) - cpuBefore;
  await worker.stop();
  if (count < EVENTS) throw new Error(`${groupId}: only ${count} of ${EVENTS} events within ${TIME_LIMIT_MS} ms`);
  return { events: count, seconds: (last - first) / 1000, cpu };
}

/** This process's CPU per event of a run (the broker is separate): comparable when the machine is shared. */
function cpuPerEvent(run: Run): number {
  return Math.round((run.cpu / run.events) * 1e6);
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-bench-transform-'));
  const broker = await startKafkaBroker({ dir: work, name: 'bench-kafka' });
  try {
    const kafka = createKafka({ brokers: [broker.brokers], clientId: 'bench', logger });
    const specs = topicSpecs({ prefix: 'bench.', replicationFactor: 1, defaultPartitions: PARTITIONS });
    const passthrough = { ...specs.identified, name: 'bench.passthrough' };
    const jobsTopic = { ...specs.identified, name: 'bench.jobs' };
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [specs.identified, specs.dlq, passthrough, jobsTopic]);
    await admin.disconnect();

    const producer = new BatchingProducer(kafka, { logger });
    await producer.connect();
    const receivedAt = new Date().toISOString();
    const input: OutboundMessage[] = Array.from({ length: EVENTS }, (_, i) => ({
      key: `p-${i % 5000}`,
      value: envelopeValue(i, receivedAt),
    }));
    for (let i = 0; i < input.length; i += 5_000) await producer.send(specs.identified.name, input.slice(i, i + 5_000));
    console.log(`${EVENTS.toLocaleString()} envelopes in ${specs.identified.name} (${PARTITIONS} partitions)`);

    // Baseline: the same worker, chunking and produce, no transform work.
    const baseline = await runWorker(
      kafka,
      'bench-baseline',
      specs.identified.name,
      specs.dlq.name,
      (m) => m.value,
      (items) =>
        producer.send(
          passthrough.name,
          items.map((d) => ({ key: d.message.key, value: d.value })),
        ),
    );
    const baselineRate = baseline.events / baseline.seconds;
    console.log(`baseline consume → produce: ${Math.round(baselineRate)} events/s (${baseline.seconds.toFixed(2)} s)`);

    // transform's FanOut with a JobSender that produces each job to the jobs topic.
    let jobs = 0;
    const sender = {
      async send(batch: readonly RpcJobInput[]): Promise<JobResult[]> {
        await producer.send(
          jobsTopic.name,
          batch.map((j) => ({ key: `${j.sourceId}:${j.messageId}`, value: JSON.stringify(j) })),
        );
        jobs += batch.length;
        return batch.map((_, index) => ({ index, status: 'stored' }) as JobResult);
      },
    };
    const samples = new ViolationSamples();
    const ctx = { deadLetter: () => undefined } as unknown as Parameters<FanOut['handle']>[1];
    const declarative = benchWorkspace();
    const fanOut = new FanOut(sender, () => declarative, logger, { regulation: () => undefined }, samples);
    const transform = await runWorker<Envelope>(kafka, 'bench-transform', specs.identified.name, specs.dlq.name, decode, (items) =>
      fanOut.handle(items, ctx),
    );
    const declarativeJobs = jobs;
    // The same, with one insert function after the declarative transformation (the sandbox's cost).
    const functions = new FunctionRegistry(await loadSandboxEngine(), { disableAfter: 20, logger });
    const withFunction = benchWorkspace(
      [{ id: 'enrich', type: 'code', code: BENCH_FUNCTION, settings: { channel: 'web' } }],
      functions.check,
    );
    const fnFanOut = new FanOut(sender, () => withFunction, logger, { regulation: () => undefined, runCode: functions.runner }, samples);
    const fnRun = await runWorker<Envelope>(kafka, 'bench-function', specs.identified.name, specs.dlq.name, decode, (items) =>
      fnFanOut.handle(items, ctx),
    );
    functions.close();
    await producer.disconnect();
    const rate = transform.events / transform.seconds;
    const fnRate = fnRun.events / fnRun.seconds;
    const ratio = rate / baselineRate;
    console.log(
      `transform (plan + transformation + routing + filter + subscription → jobs produced): ${Math.round(rate)} events/s (${transform.seconds.toFixed(2)} s), ${declarativeJobs} jobs, ${cpuPerEvent(transform)} µs CPU per event`,
    );
    console.log(`  ratio to the baseline: ${ratio.toFixed(2)}`);
    console.log(
      `transform with one insert function (QuickJS sandbox) after the same work: ${Math.round(fnRate)} events/s (${fnRun.seconds.toFixed(2)} s), ratio to the declarative run ${(fnRate / rate).toFixed(2)}, ${((fnRun.cpu / fnRun.seconds) * 100).toFixed(0)} % of one core, ${cpuPerEvent(fnRun)} µs CPU per event`,
    );
    console.log(
      `  CPU of this process (broker separate): baseline ${((baseline.cpu / baseline.seconds) * 100).toFixed(0)} %, transform ${((transform.cpu / transform.seconds) * 100).toFixed(0)} % of one core; baseline ${cpuPerEvent(baseline)} µs CPU per event; load ${os.loadavg()[0].toFixed(1)}`,
    );
    if (transform.cpu / transform.seconds > 0.85)
      console.log('  bottleneck: this process is CPU-bound on its one event loop (JSON decode, routing, job encode)');
    console.log(
      JSON.stringify({
        bench: 'transform',
        value: Math.round(rate),
        unit: 'events/s',
        baseline: Math.round(baselineRate),
        ratio: Number(ratio.toFixed(2)),
        withFunction: Math.round(fnRate),
        functionRatio: Number((fnRate / rate).toFixed(2)),
        events: EVENTS,
        jobs: declarativeJobs,
        cpuPerEventUs: cpuPerEvent(transform),
        functionCpuPerEventUs: cpuPerEvent(fnRun),
        baselineCpuPerEventUs: cpuPerEvent(baseline),
        load: Number(os.loadavg()[0].toFixed(1)),
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
