import { FencedError, type JobDb, type Transition } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import type { Destination } from '@cdp/workspace';
import type { DestinationDriver } from './destinations';
import { DeliveryEngine, type JobSink } from './engine';
import { newJob, type Job } from './job';
import type { AttemptResult } from './outcome';
import { testWorkspace } from './testing/harness';
import { MemoryPublisher } from './testing/harness';
import { TransitionWriter } from './writer';

const logger = createLogger({ name: 'engine-test', level: 'silent' });

class MemorySink implements JobSink {
  readonly rows: Transition[] = [];
  writable = true;
  readonly signal = new AbortController().signal;
  constructor(readonly jobDbId: string) {}
  async write(rows: Transition[]): Promise<void> {
    if (!this.writable) throw new Error('not writable');
    this.rows.push(...rows);
  }
  async readContent(): Promise<undefined> {
    throw new Error('every job of these tests has its content in memory');
  }
  statesOf(jobId: string): string[] {
    return this.rows.filter((r) => r.jobId === jobId).map((r) => r.to);
  }
}

class ScriptedDriver implements DestinationDriver {
  readonly calls: string[] = [];
  constructor(private readonly script: (job: Job, n: number) => AttemptResult) {}
  async deliver(job: Job, _d: Destination): Promise<AttemptResult> {
    this.calls.push(job.id);
    return this.script(job, this.calls.filter((c) => c === job.id).length);
  }
  async close(): Promise<void> {}
}

function job(id: string, destinationId: string, expiresAt = Date.now() + 60_000): Job {
  return newJob({
    id,
    jobDbId: 'db',
    sourceId: 'web',
    messageId: id,
    destinationId,
    subscriptionId: 'default',
    payload: JSON.stringify({ type: 'track', messageId: id }),
    headers: {},
    receivedAt: Date.now(),
    expiresAt,
  });
}

const ws = testWorkspace([
  { id: 'ok', url: 'http://127.0.0.1:9/ok' },
  { id: 'flaky', url: 'http://127.0.0.1:9/flaky' },
  { id: 'down', url: 'http://127.0.0.1:9/down' },
]);

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('DeliveryEngine', () => {
  it('persists executing before the call, then the outcome; retries; archives expired jobs to the publisher', async () => {
    const driver = new ScriptedDriver((j, n) => {
      const status = j.destinationId === 'ok' ? 200 : j.destinationId === 'flaky' ? (n === 1 ? 503 : 200) : 500;
      return { kind: 'response', status, excerpt: status === 500 ? 'down' : '', durationMs: 1 };
    });
    const publisher = new MemoryPublisher();
    const engine = new DeliveryEngine({
      logger,
      workspace: () => ws,
      drivers: { webhook: driver },
      publisher,
      control: () => undefined,
      backoff: { baseMs: 10, capMs: 20 },
      maxQueuedBytes: 64 * 1024 * 1024,
      breaker: { failureThreshold: 100, openMs: 100, maxOpenMs: 100 },
      maxInFlight: 10,
    });
    engine.start();
    const sink = new MemorySink('db');
    engine.attach(sink, []);
    engine.add([job('a', 'ok'), job('b', 'flaky'), job('c', 'down', Date.now() + 150)]);
    await until(() => engine.openJobs('db') === 0);
    expect(sink.statesOf('a')).toEqual(['executing', 'succeeded']);
    expect(sink.statesOf('b')).toEqual(['executing', 'awaiting_retry', 'executing', 'succeeded']);
    expect(sink.statesOf('c').slice(-2)).toEqual(['archiving', 'archived']);
    expect(publisher.records).toHaveLength(1);
    expect(JSON.parse(publisher.records[0].value)).toMatchObject({ messageId: 'c', lastStatus: 500, lastResponseExcerpt: 'down' });
    await engine.drain(1_000);
  });

  it('writes nothing more once the sink is not writable (lock lost)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const driver = new ScriptedDriver(() => ({ kind: 'response', status: 200, excerpt: '', durationMs: 1 }));
    const slow: DestinationDriver = {
      deliver: async (j, d) => {
        await gate;
        return driver.deliver(j, d);
      },
      close: async () => undefined,
    };
    const engine = new DeliveryEngine({
      logger,
      workspace: () => ws,
      drivers: { webhook: slow },
      publisher: new MemoryPublisher(),
      control: () => undefined,
      backoff: { baseMs: 10, capMs: 20 },
      maxQueuedBytes: 64 * 1024 * 1024,
      breaker: { failureThreshold: 100, openMs: 100, maxOpenMs: 100 },
      maxInFlight: 10,
    });
    const sink = new MemorySink('db');
    engine.attach(sink, []);
    engine.add([job('x', 'ok'), job('y', 'ok')]);
    await until(() => sink.rows.length === 2);
    sink.writable = false;
    engine.detach('db');
    release();
    await engine.drain(1_000);
    expect(sink.rows.map((r) => r.to)).toEqual(['executing', 'executing']);
  });
});

describe('TransitionWriter', () => {
  const t = (jobId: string): Transition => ({ jobId, from: 'executing', to: 'succeeded', attempt: 1, at: new Date() });

  it('groups concurrent writes, retries transient errors, and stops for good on FencedError', async () => {
    const committed: number[] = [];
    let failNext = 1;
    let fence = false;
    const db = {
      appendTransitions: async (_lease: number, rows: Transition[]) => {
        await new Promise((r) => setTimeout(r, 5));
        if (fence) throw new FencedError(1, 2);
        if (failNext-- > 0) throw new Error('deadlock');
        committed.push(rows.length);
      },
    } as unknown as JobDb;
    let fencedSeen = 0;
    const writer = new TransitionWriter(db, 1, logger, 100, () => fencedSeen++, 2);
    await Promise.all(Array.from({ length: 50 }, (_, i) => writer.write([t(`j${i}`)])));
    expect(committed.reduce((a, b) => a + b, 0)).toBe(50);
    expect(committed.length).toBeLessThan(50);
    fence = true;
    await expect(writer.write([t('late')])).rejects.toBeInstanceOf(FencedError);
    expect(writer.stopped).toBe(true);
    expect(fencedSeen).toBe(1);
    await expect(writer.write([t('later')])).rejects.toBeInstanceOf(FencedError);
    await writer.flush();
  });
});
