// The fairness measurements shared by isolation.int.test.ts and bench:director: offered load
// from load processes (one per stream), a sink process that records when each job arrived, and
// the quiet-customer comparison. The director under test runs in its own process too
// (TestEnv.directorProcess), so only the director's own work shares its event loop.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { percentile, REPO_ROOT, waitFor } from '@cdp/testkit';
import { TEST_RPC_TOKEN } from './harness';
import type { LoadRequest, LoadStream } from './load-process';

/** The built processes (tests run from src/ under ts-jest, the bench from dist/). */
const DIST_TESTING = path.join(REPO_ROOT, 'services/director/dist/testing');

interface Seen {
  path: string;
  at: number;
  properties: { sentAt: number; tag: string; source: string } | null;
}

/** Sink routes: `{ "/path": { status, delayMs? } | "hang" }` (sink-process.ts). */
export type SinkRoutes = Record<string, { status: number; delayMs?: number } | 'hang'>;

/** A sink process and load processes around one director (its RPC URL set with `target`). */
export class FairnessRig {
  private readonly loads: ChildProcess[] = [];
  private directorUrl = '';

  private constructor(
    private readonly sink: ChildProcess,
    readonly sinkUrl: string,
  ) {}

  static async start(routes: SinkRoutes): Promise<FairnessRig> {
    const sink = fork(path.join(DIST_TESTING, 'sink-process.js'), [JSON.stringify(routes)], { stdio: 'inherit' });
    const port = await new Promise<number>((resolve) => sink.once('message', (m: { port: number }) => resolve(m.port)));
    return new FairnessRig(sink, `http://127.0.0.1:${port}`);
  }

  target(directorUrl: string): void {
    this.directorUrl = directorUrl;
  }

  /** Offers every stream for `seconds`, each from its own load process; resolves when all batches were answered 200. */
  async offer(streams: LoadStream[], seconds: number, tag: string): Promise<void> {
    while (this.loads.length < streams.length) {
      const load = fork(path.join(DIST_TESTING, 'load-process.js'), [], { stdio: 'inherit' });
      await new Promise((resolve) => load.once('message', resolve));
      this.loads.push(load);
    }
    const replies = await Promise.all(
      streams.map(
        (stream, i) =>
          new Promise<{ done?: boolean; error?: string }>((resolve) => {
            this.loads[i].once('message', resolve);
            this.loads[i].send({ url: this.directorUrl, stream, seconds, tag, token: TEST_RPC_TOKEN } satisfies LoadRequest);
          }),
      ),
    );
    const failed = replies.find((r) => !r.done);
    if (failed) throw new Error(`load process: ${failed.error}`);
  }

  private dump(tag: string): Promise<Seen[]> {
    return new Promise((resolve) => {
      const onMessage = (m: { seen?: Seen[]; tag?: string }) => {
        if (!m.seen || m.tag !== tag) return;
        this.sink.off('message', onMessage);
        resolve(m.seen);
      };
      this.sink.on('message', onMessage);
      this.sink.send({ dump: tag });
    });
  }

  /** Delivery latencies (sink arrival − offer time) of jobs of `tag` at `route`, of one source or all. */
  async latencies(route: string, tag: string, source?: string): Promise<number[]> {
    return (await this.dump(tag))
      .filter((r) => r.path === route && (source === undefined || r.properties?.source === source))
      .map((r) => r.at - r.properties!.sentAt);
  }

  /** Requests that reached `route` (any tag). */
  async count(route: string): Promise<number> {
    return (await this.dump('')).filter((r) => r.path === route).length;
  }

  /** Waits until `expected` jobs of `tag` (and source) reached `route`, and returns their latencies. */
  async delivered(route: string, tag: string, expected: number, source?: string): Promise<number[]> {
    await waitFor(async () => (await this.latencies(route, tag, source)).length >= expected, 60_000, 200);
    return this.latencies(route, tag, source);
  }

  stop(): void {
    this.sink.send('stop');
    for (const load of this.loads) load.send('stop');
  }
}

/** The quiet customer's latencies at the shared destination and at its twin, per phase. */
export interface QuietCustomerSamples {
  /** Without the noisy customer anywhere. */
  alone: { shared: number[]; twin: number[] };
  /** While the noisy customer floods the shared destination. */
  noisy: { shared: number[]; twin: number[] };
  /** Jobs of the noisy customer delivered by the time the last round's quiet jobs were. */
  noisyDelivered: number;
  noisyOffered: number;
}

export interface QuietCustomerSpec {
  /** The destination both customers send to (sink route `/<id>`), rate-limited. */
  shared: string;
  /** A destination configured like `shared` that only the quiet customer sends to. */
  twin: string;
  quiet: string;
  noisy: string;
  quietPerSecond: number;
  /** 50× the quiet one in the criterion. */
  noisyPerSecond: number;
  roundSeconds: number;
  rounds: number;
}

/**
 * The quiet customer sends the same jobs to two identically configured destinations, `shared`
 * and `twin`: `rounds` rounds alone, then `rounds` rounds while the noisy customer floods
 * `shared`. Its latencies at `twin` in the same rounds are what they would be without the noisy
 * customer at that moment (same machine load, same director, same RPC batches), so the ratio of
 * the two leaves out what the director does not decide; the alone rounds give the classic
 * "next to the noisy one over alone" figure. Samples are pooled: rounds × roundSeconds ×
 * quietPerSecond per list.
 */
export async function quietCustomerSamples(rig: FairnessRig, spec: QuietCustomerSpec, tag: string): Promise<QuietCustomerSamples> {
  const quietAt = (destinationId: string): LoadStream => ({ sourceId: spec.quiet, destinationId, perSecond: spec.quietPerSecond });
  const perRound = spec.quietPerSecond * spec.roundSeconds;
  const out: QuietCustomerSamples = {
    alone: { shared: [], twin: [] },
    noisy: { shared: [], twin: [] },
    noisyDelivered: 0,
    noisyOffered: 0,
  };
  const round = async (phase: 'alone' | 'noisy', n: number, streams: LoadStream[]) => {
    const t = `${tag}-${phase}-${n}`;
    await rig.offer(streams, spec.roundSeconds, t);
    for (const [destinationId, into] of [
      [spec.shared, out[phase].shared],
      [spec.twin, out[phase].twin],
    ] as const) {
      for (const ms of await rig.delivered(`/${destinationId}`, t, perRound, spec.quiet)) into.push(ms);
    }
    return t;
  };
  for (let n = 0; n < spec.rounds; n++) await round('alone', n, [quietAt(spec.shared), quietAt(spec.twin)]);
  const noisyTags: string[] = [];
  for (let n = 0; n < spec.rounds; n++) {
    noisyTags.push(
      await round('noisy', n, [
        quietAt(spec.shared),
        quietAt(spec.twin),
        { sourceId: spec.noisy, destinationId: spec.shared, perSecond: spec.noisyPerSecond },
      ]),
    );
  }
  for (const t of noisyTags) out.noisyDelivered += (await rig.latencies(`/${spec.shared}`, t, spec.noisy)).length;
  out.noisyOffered = spec.rounds * spec.roundSeconds * spec.noisyPerSecond;
  return out;
}

/** The criterion: B at 20 jobs/s, A at 50x that, on a 400/s sink (`limited`) and its twin. */
export const FIFTY_TIMES_NOISY: Omit<QuietCustomerSpec, 'rounds'> = {
  shared: 'limited',
  twin: 'twin',
  quiet: 'b',
  noisy: 'a',
  quietPerSecond: 20,
  noisyPerSecond: 1_000,
  roundSeconds: 5,
};

/** The destinations FIFTY_TIMES_NOISY sends to (routes `/limited` and `/twin` of the rig's sink). */
export function fiftyTimesNoisyDestinations(
  sinkUrl: string,
): Array<{ id: string; url: string; maxConcurrency: number; maxRatePerSecond: number }> {
  return ['limited', 'twin'].map((id) => ({ id, url: `${sinkUrl}/${id}`, maxConcurrency: 50, maxRatePerSecond: 400 }));
}

/** The quiet customer's figures: p99 next to the noisy one over alone and over the twin, with a line saying them. */
export function quietCustomerReport(samples: QuietCustomerSamples): {
  alone: ReturnType<typeof summary>;
  noisy: ReturnType<typeof summary>;
  twin: ReturnType<typeof summary>;
  text: string;
} {
  const alone = summary(samples.alone.shared);
  const noisy = summary(samples.noisy.shared);
  const twin = summary(samples.noisy.twin);
  const show = (s: ReturnType<typeof summary>) => `p50 ${s.p50} / p95 ${s.p95} / p99 ${s.p99} ms (n ${s.n})`;
  const text =
    `quiet customer B: alone ${show(alone)}; next to the noisy one ${show(noisy)}; ` +
    `at the twin sink in the same rounds ${show(twin)}; p99 next to the noisy one over alone ${(noisy.p99 / alone.p99).toFixed(2)}x, ` +
    `over the twin ${(noisy.p99 / twin.p99).toFixed(2)}x; the noisy one delivered ${samples.noisyDelivered} of ${samples.noisyOffered} meanwhile`;
  return { alone, noisy, twin, text };
}

/** p50, p95, p99 (nearest rank) of latencies in ms. */
export function summary(values: number[]): { p50: number; p95: number; p99: number; n: number } {
  return { p50: percentile(values, 0.5), p95: percentile(values, 0.95), p99: percentile(values, 0.99), n: values.length };
}
