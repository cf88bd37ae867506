import { JobDb, listJobDbs } from '@cdp/jobdb';
import { mysqlUrl, type HttpSink } from '@cdp/testkit';
import type { Director } from './service';
import { historyOf, postJobs, TestEnv, testJob, testSettings, testWorkspace, useDirectorSuite, waitFor } from './testing/harness';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;
let director: Director;

beforeAll(async () => {
  ({ env, sink } = suite);
  const ws = testWorkspace([
    { id: 'p', url: `${sink.url}/p` },
    { id: 'q', url: `${sink.url}/q` },
  ]);
  await env.provision('ctl');
  director = env.director(testSettings(env.prefix), { workspace: () => ws });
  await director.start();
  await waitFor(() => director.isReady);
});

describe('operator controls from Consul KV', () => {
  it('pause holds jobs (which still expire on time), priority and rate override apply without restart, resume delivers', async () => {
    await env.consul.kv.set(env.keys.destinationControl('p'), JSON.stringify({ paused: true, priority: 7, rateLimitPerSecond: 25 }));
    await waitFor(() => director.engine.policyOf('p').paused);
    expect(director.engine.policyOf('p')).toMatchObject({ paused: true, priority: 7, rateOverride: 25 });
    expect(director.engine.policyOf('q')).toMatchObject({ paused: false, priority: 0 });

    expect(
      (
        await postJobs(director.url!, [
          testJob('wait', 'p'),
          testJob('expire', 'p', { expiresAt: new Date(Date.now() + 800).toISOString() }),
        ])
      ).status,
    ).toBe(200);
    expect((await postJobs(director.url!, [testJob('other', 'q')])).status).toBe(200);
    await waitFor(() => sink.count('/q') === 1);
    const database = env.provisioned[0].database;
    await waitFor(async () => {
      const h = [...(await historyOf(env, database)).values()].find((x) => x.messageId === 'expire');
      return h?.states.at(-1) === 'archived';
    }, 10_000);
    expect(sink.count('/p')).toBe(0);

    await env.consul.kv.delete(env.keys.destinationControl('p'));
    await waitFor(() => sink.count('/p') === 1, 10_000);
    await waitFor(
      async () => [...(await historyOf(env, database)).values()].find((x) => x.messageId === 'wait')?.states.at(-1) === 'succeeded',
    );
    expect(director.engine.policyOf('p')).toMatchObject({ paused: false, priority: 0, rateOverride: undefined });
  });

  it('adopts an orphaned draining JobDB with open jobs, finishes them and marks it drained', async () => {
    const orphan = await env.provision('orph', 'draining', async (database) => {
      const db = new JobDb({ url: mysqlUrl(), database });
      const lease = await db.takeLease({ fencingToken: 0, lockIndex: 1, holder: 'dead-director', sessionId: 'gone' });
      await db.insertJobs(
        lease,
        Array.from({ length: 5 }, (_, i) => ({
          sourceId: 'web',
          messageId: `orphan${i}`,
          destinationId: 'q',
          subscriptionId: 'default',
          payload: JSON.stringify({ type: 'track', messageId: `orphan${i}` }),
          headers: {},
          receivedAt: new Date(),
          expiresAt: new Date(Date.now() + 60_000),
        })),
      );
      await db.close();
    });
    await waitFor(async () => {
      const h = await historyOf(env, orphan.database);
      return [...h.values()].filter((x) => x.states.at(-1) === 'succeeded').length === 5;
    }, 15_000);
    await waitFor(async () => (await listJobDbs(env.consul, env.keys)).find((e) => e.id === orphan.id)?.state === 'drained', 10_000);
    expect(director.holder.heldJobDbs().some((h) => h.id === orphan.id)).toBe(false);
  });
});
