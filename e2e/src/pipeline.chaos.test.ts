// The whole pipeline under faults (issue 29): every service a process (e2e/src/testing/chain.ts)
// on a Kafka broker and a MariaDB server of this suite's own, so both can be killed, with a
// workspace that delivers every valid event, unfiltered, to the chain's sink. A steady, bounded
// load of raw /v1/batch requests runs while, in turn: each service is SIGKILLed and restarted,
// two at once, the broker and MariaDB are SIGKILLed and restarted, and the director's Consul
// session is destroyed; jobdb-manager rotates the JobDBs every few seconds throughout. At the
// end every messageId tapi answered 200 must have reached the sink, and the duplicates stay
// within the at-least-once cases (see DUPLICATES below). `scripts/chaos.sh short|long`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConsulClient, isDirectorSession } from '@cdp/consul';
import {
  REPO_ROOT,
  requireEnv,
  restartKafkaBroker,
  sleep,
  startKafkaBroker,
  startMariaDbServer,
  stopKafkaBroker,
  waitServiceReady,
  type KafkaBroker,
  type MariaDbServer,
} from '@cdp/testkit';
import { PIPELINE, startChain, type Chain, type ChainService } from './testing/chain';

/** Events per second of the load (CDP_CHAOS_PIPELINE_RATE), sent as batches of BATCH every 1000·BATCH/RATE ms. */
const RATE = Number(process.env.CDP_CHAOS_PIPELINE_RATE ?? 100);
const BATCH = 10;
/** How many times the whole fault sequence runs (CDP_CHAOS_PIPELINE_ROUNDS; `chaos.sh long` raises it). */
const ROUNDS = Number(process.env.CDP_CHAOS_PIPELINE_ROUNDS ?? 1);
/** Load alone after each fault has recovered, before the next one. */
const PAUSE_MS = Number(process.env.CDP_CHAOS_PIPELINE_PAUSE_MS ?? 2_000);
/** jobdb-manager's rotation period: a new active JobDB this often, for the whole run. */
const ROTATION_MS = Number(process.env.CDP_CHAOS_PIPELINE_ROTATION_MS ?? 4_000);
/** How long after the load stops every answered event may take to arrive (load-bound: retries after the last faults on 2 busy cores). */
const DRAIN_MS = 240_000;
const WRITE_KEY = 'wk_chaos_0001';
/** When set, a folder that receives the run's evidence: the sink's file, what was sent, the faults' times. */
const KEEP_DIR = process.env.CDP_CHAOS_PIPELINE_KEEP_DIR;
const SINK_PATH = '/chaos';

/**
 * Duplicates (an event delivered more than once) are allowed only where DESIGN.md and the
 * services' READMEs promise at-least-once rather than once, i.e. after a fault of these kinds:
 * - a consumer that re-reads what it had not committed and publishes or sends it again: identity
 *   (its output to cdp.identified) and transform (its jobs) killed, or every consumer after the
 *   broker's restart. In the same JobDB a job's idempotency key drops the copy, but after a
 *   rotation (every few seconds here) it is stored in the new JobDB and delivered again;
 * - a director killed, losing its session (destroyed, or expiring while MariaDB is down), or
 *   answering transform 503 while MariaDB restarts after it stored a batch: jobs delivered but
 *   not yet recorded are delivered again by the next holder, batches re-sent may land in
 *   another JobDB.
 * tapi, dedup (exactly once by its transactions), jobdb-manager and the archiver are not on that
 * list: a kill of one of them must not duplicate anything. So every extra copy of an event must
 * arrive after an at-least-once fault that hit while the event was in flight (it had not ended
 * when the event was sent, and began at most IN_FLIGHT_MS after its first delivery: what is
 * redone is only what was not yet recorded or committed), and an event has at most one extra
 * copy per such fault, per at-least-once service it hit (transform and director killed at once:
 * transform re-sends a job into a new JobDB and the director's successor redoes its unrecorded
 * delivery, 3 copies seen in CI). An event delivered again and again long after it arrived (a consumer
 * re-reading the same chunk after every rejoin) fails this.
 */
const AT_LEAST_ONCE: ReadonlySet<ChainService> = new Set(['identity', 'director', 'transform']);
/** How long after its delivery an event's job or offset may still be unrecorded (seconds normally; load-bound on 2 busy cores). */
const IN_FLIGHT_MS = 20_000;

/** Rows as aligned text columns, a header first. */
function table(rows: Array<Record<string, string | number>>): string[] {
  const columns = Object.keys(rows[0] ?? {});
  const width = columns.map((col) => Math.max(col.length, ...rows.map((r) => String(r[col]).length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(width[i]) : cell.padStart(width[i]))).join('  ');
  return [line(columns), ...rows.map((r) => line(columns.map((col) => String(r[col]))))];
}

interface Sent {
  phase: string;
  accepted: boolean;
  /** When its request was sent. */
  at: number;
}

/** One fault as it ran: from its start to the pipeline's recovery. */
interface Hit {
  name: string;
  startedAt: number;
  endedAt: number;
  /** How many extra copies of an event in flight it may cause (0: none). */
  extraCopies: number;
}

describe('the whole pipeline under faults (private Kafka broker and MariaDB, every service a process)', () => {
  let scratch: string;
  let broker: KafkaBroker | undefined;
  let mariadb: MariaDbServer | undefined;
  let chain: Chain | undefined;

  beforeAll(async () => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-chaos-pipeline-'));
    [broker, mariadb] = await Promise.all([startKafkaBroker({ dir: scratch, name: 'chaos-kafka' }), startMariaDbServer({ dir: scratch })]);
    chain = await startChain(PIPELINE, {
      label: 'chaos_pipe',
      partitions: 2,
      kafkaEnv: { KAFKA_BROKERS: broker.brokers },
      mysqlUrl: mariadb.url,
      workspace: path.join(REPO_ROOT, 'e2e/src/testing/chaos-workspace.yaml'),
      manager: { JOBDB_ROTATION_PERIOD_MS: ROTATION_MS },
    });
  });
  afterAll(async () => {
    // The chain first: it drops its databases on the suite's MariaDB.
    await chain?.stop().catch(() => undefined);
    if (broker) await stopKafkaBroker(broker);
    await mariadb?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it(`every event answered 200 reaches the sink through ${ROUNDS} round(s) of kills, restarts, session losses and JobDB rotations`, async () => {
    const c = chain!;
    const tapiUrl = c.members.tapi!.url!;
    const run = Date.now().toString(36);
    const sent = new Map<string, Sent>();
    const errors: Record<string, number> = {};
    let phase = 'warm-up';
    let loading = true;
    let seq = 0;

    // The load: one batch at a time (a slow tapi slows it down rather than piling requests up).
    const load = (async () => {
      const interval = (1_000 * BATCH) / RATE;
      while (loading) {
        const started = Date.now();
        const ids = Array.from({ length: BATCH }, () => `${run}-${seq++}`);
        const batch = ids.map((messageId, i) => ({
          type: 'track',
          event: 'Chaos Tick',
          userId: `chaos-user-${(seq + i) % 50}`,
          messageId,
          properties: { phase },
        }));
        const sentPhase = phase;
        let accepted = false;
        try {
          const res = await fetch(`${tapiUrl}/v1/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}` },
            body: JSON.stringify({ batch }),
            signal: AbortSignal.timeout(10_000),
          });
          accepted = res.status === 200;
          if (!accepted) errors[`HTTP ${res.status}`] = (errors[`HTTP ${res.status}`] ?? 0) + 1;
          await res.arrayBuffer();
        } catch (error) {
          const name = (error as Error).name === 'TimeoutError' ? 'timeout' : 'connection error';
          errors[name] = (errors[name] ?? 0) + 1;
        }
        for (const id of ids) sent.set(id, { phase: sentPhase, accepted, at: started });
        await sleep(Math.max(0, interval - (Date.now() - started)));
      }
    })();

    /** Kubernetes restarts a pod whose process exited; so does the suite, and counts it. */
    const selfExits: string[] = [];
    const reviveExited = async () => {
      for (const [name, member] of Object.entries(c.members)) {
        if (member.process.child.exitCode === null && member.process.child.signalCode === null) continue;
        selfExits.push(`${name} (${phase})`);
        await c.restart(name as ChainService);
      }
    };
    /** After a dependency's restart: every service ready again (restarted if it exited meanwhile). */
    const recovered = async () => {
      const deadline = Date.now() + 120_000;
      for (;;) {
        await reviveExited();
        const ready = await Promise.all(
          Object.values(c.members).map((m) =>
            waitServiceReady(m.process, 2_000).then(
              () => true,
              () => false,
            ),
          ),
        );
        if (ready.every(Boolean)) return;
        if (Date.now() > deadline) throw new Error('the pipeline did not recover within 120 s');
      }
    };
    const consul = createConsulClient(requireEnv('CONSUL_HTTP_ADDR'));
    /** Destroys the sessions holding the chain's JobDB locks for directors: as if their TTL ran out. */
    const expireDirectorSessions = async () => {
      const held = new Set((await consul.kv.list(c.consulPrefix)).flatMap((e) => (e.Session ? [e.Session] : [])));
      let destroyed = 0;
      for (const id of held) {
        const info = await consul.session.info(id);
        if (info && isDirectorSession(info.Name)) {
          await consul.session.destroy(id);
          destroyed++;
        }
      }
      expect(destroyed).toBeGreaterThan(0);
      // The director notices, takes a new session and its JobDB again; the load shows whether anything was lost meanwhile.
      await sleep(5_000);
    };

    const kill = (...services: ChainService[]) => ({
      name: `SIGKILL ${services.join(' + ')}`,
      run: () => Promise.all(services.map((s) => c.restart(s))),
      extraCopies: services.filter((s) => AT_LEAST_ONCE.has(s)).length,
    });
    const faults: Array<{ name: string; run: () => Promise<unknown>; extraCopies: number }> = [
      ...PIPELINE.map((s) => kill(s)),
      kill('transform', 'director'),
      kill('dedup', 'identity'),
      { name: 'Kafka broker SIGKILL + restart', run: () => restartKafkaBroker(broker!).then(recovered), extraCopies: 1 },
      { name: 'MariaDB SIGKILL + restart', run: () => mariadb!.restart().then(recovered), extraCopies: 1 },
      { name: 'director Consul session destroyed', run: expireDirectorSessions, extraCopies: 1 },
    ];
    const hits: Hit[] = [];
    const phases: string[] = ['warm-up'];
    const timings: Record<string, number> = {};
    try {
      await sleep(PAUSE_MS);
      for (let round = 1; round <= ROUNDS; round++) {
        for (const fault of faults) {
          phase = ROUNDS > 1 ? `${fault.name} (round ${round})` : fault.name;
          phases.push(phase);
          const started = Date.now();
          await fault.run();
          await reviveExited();
          hits.push({ name: phase, startedAt: started, endedAt: Date.now(), extraCopies: fault.extraCopies });
          timings[phase] = Date.now() - started;
          await sleep(PAUSE_MS);
        }
      }
      phase = 'cool-down';
      phases.push(phase);
      await sleep(PAUSE_MS);
    } finally {
      loading = false;
      await load;
      await consul.close();
    }

    // Every answered event, then a few seconds more so that a late duplicate shows.
    const accepted = [...sent].filter(([, s]) => s.accepted).map(([id]) => id);
    /** Each messageId's arrival times at the sink, in order. */
    const delivered = () => {
      const arrivals = new Map<string, number[]>();
      for (const line of c.sinkLines()) {
        if (line.path !== SINK_PATH) continue;
        const id = (line.body as { messageId: string }).messageId;
        arrivals.set(id, [...(arrivals.get(id) ?? []), line.at]);
      }
      return arrivals;
    };
    const drainStarted = Date.now();
    let copies = delivered();
    while (accepted.some((id) => !copies.has(id)) && Date.now() - drainStarted < DRAIN_MS) {
      await reviveExited();
      await sleep(1_000);
      copies = delivered();
    }
    const drainMs = Date.now() - drainStarted;
    await sleep(3_000);
    copies = delivered();

    if (KEEP_DIR) {
      fs.mkdirSync(KEEP_DIR, { recursive: true });
      fs.copyFileSync(c.sinkFile, path.join(KEEP_DIR, 'sink.jsonl'));
      fs.writeFileSync(path.join(KEEP_DIR, 'run.json'), JSON.stringify({ hits, sent: [...sent] }));
    }
    const missing = accepted.filter((id) => !copies.has(id));
    const duplicated = [...copies].filter(([, ats]) => ats.length > 1);
    // Each duplicated event against the at-least-once faults it was in the pipeline for.
    const unexplained: Array<{ id: string; phase: string; copies: number; explainedBy: string[] }> = [];
    for (const [id, ats] of duplicated) {
      const s = sent.get(id);
      const during = hits.filter((h) => h.extraCopies > 0 && s !== undefined && h.endedAt > s.at && h.startedAt < ats[0] + IN_FLIGHT_MS);
      const late = ats.slice(1).some((at) => !during.some((h) => h.startedAt < at));
      const explaining = during.filter((h) => h.startedAt < ats[ats.length - 1]);
      const explainedBy = explaining.map((h) => h.name);
      if (late || ats.length > 1 + explaining.reduce((n, h) => n + h.extraCopies, 0))
        unexplained.push({ id, phase: s?.phase ?? '?', copies: ats.length, explainedBy });
    }
    const extra = (id: string) => Math.max(0, (copies.get(id)?.length ?? 0) - 1);
    const rows = phases.map((p) => {
      const ids = [...sent].filter(([, s]) => s.phase === p);
      const ok = ids.filter(([, s]) => s.accepted).map(([id]) => id);
      return {
        phase: p,
        'took s': timings[p] === undefined ? '' : (timings[p] / 1_000).toFixed(1),
        sent: ids.length,
        'answered 200': ok.length,
        delivered: ok.filter((id) => copies.has(id)).length,
        missing: ok.filter((id) => !copies.has(id)).length,
        duplicates: ok.reduce((n, id) => n + extra(id), 0),
        'not answered, delivered': ids.filter(([id, s]) => !s.accepted && copies.has(id)).length,
      };
    });
    const summary = [
      `pipeline chaos: ${ROUNDS} round(s), ${RATE} events/s, rotation every ${ROTATION_MS} ms`,
      `sent ${sent.size}, answered 200 ${accepted.length}, delivered ${accepted.length - missing.length}, missing ${missing.length}, ` +
        `duplicated events ${duplicated.length} (extra copies ${duplicated.reduce((n, [id]) => n + extra(id), 0)}, ` +
        `most copies ${[...copies.values()].reduce((most, ats) => Math.max(most, ats.length), 1)}, outside the at-least-once cases ${unexplained.length}), ` +
        `drain ${(drainMs / 1_000).toFixed(1)} s`,
      `not answered 200: ${JSON.stringify(errors)}; processes that exited by themselves (restarted): ${selfExits.length ? selfExits.join(', ') : 'none'}`,
    ];
    // Plain text for the CI log (no jest console decoration).
    process.stdout.write(`\n${[...summary, ...table(rows)].join('\n')}\n`);

    expect(accepted.length).toBeGreaterThan(0);
    expect(missing.slice(0, 20)).toEqual([]);
    // No messageId the suite did not send (a corrupted or foreign event).
    expect([...copies.keys()].filter((id) => !sent.has(id))).toEqual([]);
    expect(unexplained.slice(0, 20)).toEqual([]);
  });
});
