// pnpm bench:pipeline — the whole pipeline (tapi, dedup, identity, jobdb-manager, director,
// transform, archiver as processes, on the chain harness of src/testing/chain.ts) driven at a
// paced rate through tapi's /v1/batch to the chain's sample sink:
//   1. sustained: events/s end to end and p50/p99 ingest → delivery latency (the sink's receive
//      time minus the time tapi answered the batch), for BENCH_PIPELINE_SECONDS or
//      BENCH_PIPELINE_EVENTS, whichever ends first;
//   2. outage: the sink answers 503 for BENCH_PIPELINE_OUTAGE_SECONDS while ingest goes on at
//      BENCH_PIPELINE_OUTAGE_RATE; then the backlog's drain rate as a multiple of that rate;
//   3. the same run's raw baselines: Kafka produce rate of the same events, HTTP POST rate to the
//      same sink; each stage's share of CPU (process CPU seconds from /proc/<pid>/stat).
// Ends with one JSON line (DESIGN.md, performance targets). Starts and stops its own harness
// (Kafka, DynamoDB Local, S3Proxy, Consul dev; MariaDB is the shared server); 127.0.0.1 only;
// every phase is bounded in count and time.
import './resolve-src';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { createTopicsServed } from '@cdp/kafka';
import { cpuSeconds, percentile, sleep, startInfra, stopInfra, type InfraState, type SinkAnswer } from '@cdp/testkit';
import { PIPELINE, SAMPLE_WRITE_KEY, startChain, type Chain } from '../testing/chain';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return value;
}

const SECONDS = envNumber('BENCH_PIPELINE_SECONDS', 60);
const RATE = envNumber('BENCH_PIPELINE_RATE', 5_000);
const EVENTS = envNumber('BENCH_PIPELINE_EVENTS', Math.ceil(RATE * SECONDS));
const OUTAGE_SECONDS = envNumber('BENCH_PIPELINE_OUTAGE_SECONDS', 60);
const OUTAGE_RATE = envNumber('BENCH_PIPELINE_OUTAGE_RATE', Math.max(1, Math.round(RATE / 5)));
const BATCH = envNumber('BENCH_PIPELINE_BATCH', 100);
const PARTITIONS = envNumber('BENCH_PIPELINE_PARTITIONS', 2);
const RAW_SECONDS = envNumber('BENCH_PIPELINE_RAW_SECONDS', 5);
/** How long delivery may lag after ingest stops before a phase gives up waiting. */
const SETTLE_SECONDS = envNumber('BENCH_PIPELINE_SETTLE_SECONDS', 120);
const MAX_IN_FLIGHT = 64;
const TARGET = { eventsPerSecond: 5_000, p99Ms: 2_000, drainMultiple: 3 };
const AUTH = `Basic ${Buffer.from(`${SAMPLE_WRITE_KEY}:`).toString('base64')}`;
const RUN = crypto.randomBytes(3).toString('hex');

function event(id: string): Record<string, unknown> {
  return {
    type: 'track',
    messageId: id,
    userId: `user-${id.slice(-3)}`,
    event: 'Order Completed',
    properties: { orderId: id, total: 42.5, currency: 'USD', items: [{ sku: 'a', qty: 1 }] },
    context: { library: { name: 'bench', version: '1' } },
  };
}

/** What tapi answered and the sink received, per messageId. */
class Ledger {
  readonly answered = new Map<string, number>();
  readonly delivered = new Map<string, number>();
  duplicates = 0;
  rejected = 0;
  outage = false;
  outageAnswers = 0;

  attach(chain: Chain): void {
    chain.sink.route('/hook', (req): SinkAnswer => {
      if (this.outage) {
        this.outageAnswers += 1;
        return { status: 503, body: 'bench outage' };
      }
      const id = (JSON.parse(req.body) as { messageId?: string }).messageId;
      if (id?.startsWith(`pb-${RUN}-`)) {
        if (this.delivered.has(id)) this.duplicates += 1;
        else this.delivered.set(id, req.at);
      }
      return { status: 200 };
    });
  }

  deliveredOf(ids: string[]): number {
    return ids.filter((id) => this.delivered.has(id)).length;
  }
}

/**
 * Sends `count` events (ids `pb-<run>-<phase>-<n>`) in /v1/batch requests of BATCH at `rate`
 * events/s, at most MAX_IN_FLIGHT requests open, until the count or `seconds` is reached.
 */
async function ingest(
  tapiUrl: string,
  ledger: Ledger,
  phase: string,
  rate: number,
  count: number,
  seconds: number,
): Promise<{ ids: string[]; seconds: number; rate: number }> {
  const ids: string[] = [];
  const started = Date.now();
  const deadline = started + seconds * 1000;
  const open = new Set<Promise<void>>();
  for (let sent = 0; sent < count && Date.now() < deadline;) {
    const size = Math.min(BATCH, count - sent);
    const due = started + (sent / rate) * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
    while (open.size >= MAX_IN_FLIGHT) await Promise.race(open);
    const batch = Array.from({ length: size }, (_, i) => `pb-${RUN}-${phase}-${sent + i}`);
    sent += size;
    const post = (async () => {
      const res = await fetch(`${tapiUrl}/v1/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: AUTH },
        body: JSON.stringify({ batch: batch.map(event) }),
      });
      await res.text();
      const at = Date.now();
      if (res.status !== 200) {
        ledger.rejected += batch.length;
        return;
      }
      for (const id of batch) ledger.answered.set(id, at);
      ids.push(...batch);
    })().catch(() => {
      ledger.rejected += batch.length;
    });
    open.add(post);
    void post.finally(() => open.delete(post));
  }
  await Promise.all(open);
  const elapsed = (Date.now() - started) / 1000;
  return { ids, seconds: elapsed, rate: ids.length / elapsed };
}

/** Waits (bounded by SETTLE_SECONDS) until every id is delivered or delivery stalls; the count delivered. */
async function settle(ledger: Ledger, ids: string[]): Promise<number> {
  const deadline = Date.now() + SETTLE_SECONDS * 1000;
  let last = -1;
  let stalledSince = Date.now();
  for (;;) {
    const done = ledger.deliveredOf(ids);
    if (done >= ids.length || Date.now() > deadline) return done;
    if (done !== last) {
      last = done;
      stalledSince = Date.now();
    } else if (Date.now() - stalledSince > 30_000) return done;
    await sleep(200);
  }
}

async function rawKafkaRate(chain: Chain): Promise<number> {
  const topic = `${chain.prefix}bench-raw`;
  const admin = chain.kafka.admin();
  await admin.connect();
  await createTopicsServed(admin, [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }]);
  const producer = chain.kafka.producer();
  await producer.connect();
  const end = Date.now() + RAW_SECONDS * 1000;
  let produced = 0;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let n = 0; Date.now() < end; n += 1) {
          const messages = Array.from({ length: BATCH }, (_, i) => {
            const id = `raw-${RUN}-${worker}-${n}-${i}`;
            return { key: id, value: JSON.stringify(event(id)) };
          });
          await producer.send({ topic, acks: -1, messages });
          produced += messages.length;
        }
      }),
    );
    return produced / ((performance.now() - started) / 1000);
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  }
}

async function rawHttpRate(chain: Chain): Promise<number> {
  const body = JSON.stringify(event(`raw-${RUN}`));
  const end = Date.now() + RAW_SECONDS * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (Date.now() < end) {
        const res = await fetch(`${chain.sink.url}/raw`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
        await res.text();
        done += 1;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

type Stage = { name: string; pid: number };

/** Which harness dependency a process is, from its command line. */
function infraName(pid: number): string {
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').toLowerCase();
  } catch {
    // gone
  }
  const known = ['kafka', 'dynamodb', 's3proxy', 'consul'].find((k) => cmd.includes(k));
  return `${known ?? 'process'} (pid ${pid})`;
}

function cpuSnapshot(stages: Stage[]): Map<string, number> {
  const snap = new Map<string, number>();
  for (const s of stages) {
    try {
      snap.set(s.name, cpuSeconds(s.pid));
    } catch {
      snap.set(s.name, Number.NaN);
    }
  }
  snap.set('bench (load generator + sink)', process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6);
  return snap;
}

function cpuShares(before: Map<string, number>, after: Map<string, number>): { name: string; seconds: number; share: number }[] {
  const used = [...after].map(([name, s]) => ({ name, seconds: s - (before.get(name) ?? 0) })).filter((u) => Number.isFinite(u.seconds));
  const total = used.reduce((a, u) => a + u.seconds, 0) || 1;
  return used.map((u) => ({ ...u, share: u.seconds / total })).sort((a, b) => b.share - a.share);
}

/** The sample workspace's `hook` without its 500/s limit and with room for a long outage: the bench measures the pipeline, not a limit. */
function unlimitedHook(text: string): string {
  const next = text.replace(
    / {4}limits:\n {6}maxConcurrency: 20\n {6}maxRatePerSecond: 500\n/,
    '    limits:\n      maxConcurrency: 256\n      retryWindowMs: 3600000\n',
  );
  if (next === text) throw new Error("config/workspace.sample.yaml's hook limits changed: update unlimitedHook in pipeline-bench.ts");
  return next;
}

async function main(): Promise<void> {
  console.log(
    `pipeline bench: ${RATE} events/s offered for ≤ ${SECONDS} s (≤ ${EVENTS} events, /v1/batch of ${BATCH}), outage ${OUTAGE_SECONDS} s at ${OUTAGE_RATE} events/s, ${PARTITIONS} partitions; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  let infra: InfraState | undefined;
  let chain: Chain | undefined;
  try {
    infra = await startInfra(['kafka', 'mysql', 'consul', 'dynamodb', 's3']);
    Object.assign(process.env, infra.env);
    const startedChain = Date.now();
    chain = await startChain(PIPELINE, {
      label: 'bench_pipeline',
      partitions: PARTITIONS,
      env: { LOG_LEVEL: 'warn', DIRECTOR_RETRY_WINDOW_MS: '3600000' },
    });
    chain.updateWorkspace(unlimitedHook);
    await sleep(8_000); // every service polls the workspace file every 2 s
    console.log(`pipeline started in ${((Date.now() - startedChain) / 1000).toFixed(0)} s`);
    const ledger = new Ledger();
    ledger.attach(chain);
    const tapiUrl = chain.members.tapi!.url!;

    const kafkaRate = await rawKafkaRate(chain);
    console.log(`baseline raw Kafka produce (acks all, batches of ${BATCH}, 8 producers' sends): ${Math.round(kafkaRate)} events/s`);
    const httpRate = await rawHttpRate(chain);
    console.log(`baseline raw HTTP POST to the sink (64 concurrent): ${Math.round(httpRate)} req/s`);

    // Warm-up: every stage's consumers joined and the JobDB open before the clock starts.
    const warm = await ingest(tapiUrl, ledger, 'warm', 200, 200, 10);
    await settle(ledger, warm.ids);

    const stages: Stage[] = [
      ...Object.entries(chain.members).map(([name, m]) => ({ name, pid: m.process.child.pid! })),
      ...infra.processes.map((p) => ({ name: `infra ${infraName(p.pid)}`, pid: p.pid })),
    ];
    const cpuBefore = cpuSnapshot(stages);
    const sustained = await ingest(tapiUrl, ledger, 's', RATE, EVENTS, SECONDS);
    const deliveredCount = await settle(ledger, sustained.ids);
    const cpuAfter = cpuSnapshot(stages);
    // A loop, not Math.min(...ids): spreading 150,000 arguments overflows the stack.
    let first = Infinity;
    let lastDelivery = 0;
    for (const id of sustained.ids) {
      first = Math.min(first, ledger.answered.get(id)!);
      lastDelivery = Math.max(lastDelivery, ledger.delivered.get(id) ?? 0);
    }
    const endToEnd = deliveredCount / ((lastDelivery - first) / 1000);
    const latencies = sustained.ids
      .filter((id) => ledger.delivered.has(id))
      .map((id) => ledger.delivered.get(id)! - ledger.answered.get(id)!);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    console.log(
      `sustained: ${sustained.ids.length} events answered 200 in ${sustained.seconds.toFixed(1)} s (${Math.round(sustained.rate)} events/s ingested, ${ledger.rejected} not answered 200); ` +
        `${deliveredCount} delivered; end to end ${Math.round(endToEnd)} events/s (first answer → last delivery); ingest → delivery p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`,
    );
    const shares = cpuShares(cpuBefore, cpuAfter);
    console.log('CPU share during the sustained phase (process CPU seconds; MariaDB, the shared server, not counted):');
    for (const s of shares)
      console.log(`  ${s.name.padEnd(36)} ${s.seconds.toFixed(1).padStart(7)} s  ${(s.share * 100).toFixed(1).padStart(5)} %`);
    const busiest = shares.find((s) => !s.name.startsWith('bench')) ?? shares[0];

    // Outage: the sink answers 503 while ingest goes on; then the backlog drains with ingest still at OUTAGE_RATE.
    ledger.outage = true;
    const outageIngest = await ingest(tapiUrl, ledger, 'o', OUTAGE_RATE, Math.ceil(OUTAGE_RATE * OUTAGE_SECONDS), OUTAGE_SECONDS);
    const backlog = outageIngest.ids.length - ledger.deliveredOf(outageIngest.ids);
    ledger.outage = false;
    const drainStart = Date.now();
    const drainIds = [...outageIngest.ids];
    const during = ingest(
      tapiUrl,
      ledger,
      'd',
      OUTAGE_RATE,
      Math.ceil(OUTAGE_RATE * (SETTLE_SECONDS + OUTAGE_SECONDS)),
      SETTLE_SECONDS + OUTAGE_SECONDS,
    );
    let drainedAt = 0;
    const drainDeadline = drainStart + (SETTLE_SECONDS + OUTAGE_SECONDS) * 1000;
    while (Date.now() < drainDeadline) {
      if (ledger.deliveredOf(drainIds) >= drainIds.length) {
        drainedAt = Date.now();
        break;
      }
      await sleep(200);
    }
    const drainDelivered = [...ledger.delivered.values()].filter((at) => at >= drainStart && at <= (drainedAt || Date.now())).length;
    const drainSeconds = ((drainedAt || Date.now()) - drainStart) / 1000;
    // Stop the accompanying ingest: it is bounded by count and time, and ends soon after its deadline.
    const afterDrain = await during;
    const drainRate = drainDelivered / drainSeconds;
    const drainMultiple = drainRate / outageIngest.rate;
    console.log(
      `outage: ${outageIngest.ids.length} events answered during ${outageIngest.seconds.toFixed(0)} s of 503s (${Math.round(outageIngest.rate)} events/s, ${ledger.outageAnswers} 503 answers); backlog ${backlog}; ` +
        (drainedAt
          ? `drained in ${drainSeconds.toFixed(1)} s at ${Math.round(drainRate)} deliveries/s with ingest going on = ${drainMultiple.toFixed(2)}× the ingest rate`
          : `NOT drained within ${drainSeconds.toFixed(0)} s (${ledger.deliveredOf(drainIds)} of ${drainIds.length} delivered)`),
    );
    await settle(ledger, afterDrain.ids);
    console.log(`duplicates at the sink over the run: ${ledger.duplicates}`);

    const met = {
      eventsPerSecond: endToEnd >= TARGET.eventsPerSecond,
      p99: p99 < TARGET.p99Ms,
      drain: drainedAt > 0 && drainMultiple >= TARGET.drainMultiple,
    };
    console.log(
      `targets: ≥ ${TARGET.eventsPerSecond} events/s ${met.eventsPerSecond ? 'met' : 'MISSED'} (${Math.round(endToEnd)}); p99 < ${TARGET.p99Ms} ms ${met.p99 ? 'met' : 'MISSED'} (${p99.toFixed(0)}); ` +
        `drain ≥ ${TARGET.drainMultiple}× ${met.drain ? 'met' : 'MISSED'} (${drainMultiple.toFixed(2)}×); highest CPU share: ${busiest.name} (${(busiest.share * 100).toFixed(1)} %)`,
    );
    console.log(
      JSON.stringify({
        bench: 'pipeline',
        value: Math.round(endToEnd),
        unit: 'events/s',
        baseline: Math.round(kafkaRate),
        ratio: Number((endToEnd / kafkaRate).toFixed(3)),
        http_baseline: Math.round(httpRate),
        http_ratio: Number((endToEnd / httpRate).toFixed(3)),
        ingest_rate: Math.round(sustained.rate),
        offered_rate: RATE,
        p50_ms: Math.round(p50),
        p99_ms: Math.round(p99),
        delivered: deliveredCount,
        answered: sustained.ids.length,
        drain_multiple: Number(drainMultiple.toFixed(2)),
        drain_rate: Math.round(drainRate),
        outage_seconds: OUTAGE_SECONDS,
        backlog,
        duplicates: ledger.duplicates,
        cpu_share: Object.fromEntries(shares.map((s) => [s.name, Number(s.share.toFixed(3))])),
        bottleneck: busiest.name,
        targets_met: met,
        load_average: os.loadavg()[0],
      }),
    );
  } finally {
    await chain?.stop();
    if (infra) await stopInfra(infra);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
