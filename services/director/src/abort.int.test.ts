import { registry } from '@cdp/metrics';
import { metricValue } from '@cdp/testkit';
import { historyOf, postJobs, testSettings, testWorkspace, waitFor, useDirectorSuite } from './testing/harness';

const suite = useDirectorSuite();

async function abortedCalls(): Promise<number> {
  return metricValue(await registry.metrics(), 'cdp_director_aborted_calls_total');
}

describe('lock loss', () => {
  it('aborts the calls in flight for the lost JobDB; the old holder records no outcome and the jobs are retried', async () => {
    const jdb = await suite.env.provision('abort');
    // The first five calls never get an answer; a call lives up to its 60 s timeout unless aborted.
    suite.sink.route('/slow', (_req, n) => (n <= 5 ? 'hang' : { status: 200 }));
    const ws = testWorkspace([{ id: 'slow', url: `${suite.sink.url}/slow`, timeoutMs: 60_000, maxConcurrency: 10 }]);
    const d = suite.env.director(testSettings(suite.env.prefix, { POD_NAME: 'ab' }), { workspace: () => ws });
    await d.start();
    await waitFor(() => d.isReady);
    const firstLease = d.holder.heldJobDbs().find((h) => h.id === jdb.id)!.leaseId;
    const jobs = Array.from({ length: 5 }, (_, i) => ({
      sourceId: 'web',
      messageId: `a${i}`,
      destinationId: 'slow',
      subscriptionId: 'default',
      payload: { type: 'track', messageId: `a${i}`, event: 'E' },
    }));
    expect((await postJobs(d.url!, jobs)).status).toBe(200);
    await waitFor(() => suite.sink.count('/slow') === 5);
    const abortedBefore = await abortedCalls();
    expect(suite.sink.closedUnanswered('/slow')).toBe(0);

    // The lock goes away behind the director's back (as after a partition past the TTL).
    const session = d.holder.currentSession!;
    await suite.env.consul.session.destroy(session.id);

    // The destination sees every hanging call's connection closed, long before their timeout.
    await waitFor(() => suite.sink.closedUnanswered('/slow') === 5, 10_000);
    expect((await abortedCalls()) - abortedBefore).toBe(5);

    // The director takes the JobDB again under a new session and lease, retries the five
    // interrupted jobs, and each ends in exactly one final state; the old lease wrote no outcome.
    let history!: Awaited<ReturnType<typeof historyOf>>;
    await waitFor(async () => {
      history = await historyOf(suite.env, jdb.database);
      return history.size === 5 && [...history.values()].every((h) => h.states.at(-1) === 'succeeded');
    }, 20_000);
    for (const h of history.values()) {
      expect(h.states.filter((s) => s === 'succeeded' || s === 'discarded' || s === 'archived')).toHaveLength(1);
      const byOldLease = h.rows.filter((r) => Number(r.lease_id) === firstLease).map((r) => String(r.to_state));
      expect(byOldLease).toEqual(['executing']);
      expect(h.rows.some((r) => String(r.error ?? '').startsWith('interrupted'))).toBe(true);
    }
    await d.stop();
  });
});
