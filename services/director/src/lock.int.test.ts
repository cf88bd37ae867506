import { FencedError, JobDb, listJobDbs, setJobDbState } from '@cdp/jobdb';
import { mysqlUrl, type HttpSink } from '@cdp/testkit';
import {
  EXPIRY_TEST_SESSION_TTL_MS,
  historyOf,
  postJobs,
  TestEnv,
  testJobs,
  testSettings,
  testWorkspace,
  useDirectorSuite,
  waitFor,
} from './testing/harness';

const suite = useDirectorSuite();
let env: TestEnv;
let sink: HttpSink;

const jobs = (n: number, from = 0) => testJobs(n, 'm', { from });

beforeAll(async () => {
  ({ env, sink } = suite);
  sink.route('/hook', () => ({ status: 200, delayMs: 20 }));
});

const workspace = () => testWorkspace([{ id: 'hook', url: `${sink.url}/hook`, maxConcurrency: 20 }]);

describe('JobDB locks', () => {
  it('answers 503 while it holds no active JobDB', async () => {
    const ws = workspace();
    const lonely = env.director(testSettings(`${env.prefix}empty/`), { workspace: () => ws });
    await lonely.start();
    const res = await postJobs(lonely.url!, jobs(1));
    expect(res.status).toBe(503);
    await lonely.stop();
  });

  it('two directors, one JobDB: one writes; after a kill the other takes over and every job ends in exactly one final state', async () => {
    const jdb = await env.provision('take');
    const ws = workspace();
    // A's session is the one that must run out after the kill.
    const a = env.director(testSettings(env.prefix, { POD_NAME: 'a', DIRECTOR_SESSION_TTL_MS: EXPIRY_TEST_SESSION_TTL_MS }), {
      workspace: () => ws,
    });
    const b = env.director(testSettings(env.prefix, { POD_NAME: 'b' }), { workspace: () => ws });
    await a.start();
    await waitFor(() => a.isReady);
    await b.start();
    // B has looked at the JobDBs (a whole pass) and found the only one held.
    await b.holder.reconcile();
    expect(b.isReady).toBe(false);
    expect((await postJobs(b.url!, jobs(1))).status).toBe(503);

    for (let i = 0; i < 4; i++) expect((await postJobs(a.url!, jobs(100, i * 100))).status).toBe(200);
    await waitFor(() => sink.count('/hook') >= 80);
    const aSession = a.holder.sessionId!;
    await a.kill();

    // The session outlives the kill until its TTL runs out; only then (and after lock-delay) can B take the lock.
    const seen: string[] = [];
    await waitFor(
      async () => {
        if (!seen.includes('a-session-gone') && !(await env.consul.session.info(aSession))) seen.push('a-session-gone');
        if (!b.isReady) return false;
        seen.push('b-ready');
        return true;
      },
      20_000,
      20,
    );
    expect(seen).toEqual(['a-session-gone', 'b-ready']);

    let history!: Awaited<ReturnType<typeof historyOf>>;
    await waitFor(async () => {
      history = await historyOf(env, jdb.database);
      return history.size === 400 && [...history.values()].every((h) => ['succeeded'].includes(h.states.at(-1)!));
    }, 30_000);
    for (const h of history.values()) {
      const finals = h.states.filter((s) => s === 'succeeded' || s === 'discarded' || s === 'archived');
      expect(finals).toHaveLength(1);
    }
    // Delivered more than once only when in flight at the kill (an interrupted attempt).
    const received = new Map<string, number>();
    for (const r of sink.requests.filter((x) => x.path === '/hook')) {
      const id = JSON.parse(r.body).messageId as string;
      received.set(id, (received.get(id) ?? 0) + 1);
    }
    for (const h of history.values()) {
      const n = received.get(h.messageId) ?? 0;
      expect(n).toBeGreaterThanOrEqual(1);
      if (n > 1) expect(h.rows.some((r) => String(r.error ?? '').startsWith('interrupted'))).toBe(true);
    }
    await b.stop();
  });

  it('fencing: a paused director whose JobDB was taken cannot commit, and stops on its own once it notices', async () => {
    const jdb = await env.provision('fence');
    const ws = workspace();
    const a = env.director(testSettings(env.prefix, { POD_NAME: 'fa' }), { workspace: () => ws });
    await a.start();
    await waitFor(() => a.holder.heldJobDbs().some((h) => h.id === jdb.id));
    const held = a.holder.heldJobDbs().find((h) => h.id === jdb.id)!;
    // Simulate a pause: A stops renewing and its session is destroyed behind its back.
    const session = a.holder.currentSession!;
    session.pauseRenewals();
    let lostReason: string | undefined;
    session.on('lost', (reason: string) => {
      lostReason = reason;
    });
    await env.consul.session.destroy(session.id);

    const b = env.director(testSettings(env.prefix, { POD_NAME: 'fb' }), { workspace: () => ws });
    await b.start();
    await waitFor(() => b.holder.heldJobDbs().some((h) => h.id === jdb.id), 20_000);

    // A's lease, replayed as if A woke up mid-write: refused.
    const db = new JobDb({ url: mysqlUrl(), database: jdb.database });
    await expect(
      db.insertJobs(held.leaseId, [
        {
          sourceId: 'web',
          messageId: 'late',
          destinationId: 'hook',
          subscriptionId: 'default',
          payload: '{}',
          headers: {},
          receivedAt: new Date(),
          expiresAt: new Date(Date.now() + 60_000),
        },
      ]),
    ).rejects.toBeInstanceOf(FencedError);
    await expect(
      db.appendTransitions(held.leaseId, [{ jobId: 'x'.repeat(27), from: 'executing', to: 'succeeded', attempt: 1, at: new Date() }]),
    ).rejects.toBeInstanceOf(FencedError);
    const [{ n }] = await env.query(jdb.database, 'SELECT COUNT(*) AS n FROM jobs WHERE lease_id = ?', [held.leaseId]);
    expect(Number(n)).toBe(0);
    await db.close();

    // A notices (its lock watch or its next renewal) and stops taking jobs for that JobDB.
    session.resumeRenewals();
    await waitFor(() => lostReason !== undefined && !a.holder.heldJobDbs().some((h) => h.id === jdb.id), 10_000);
    // Noticed at once: by its lock watch (even while paused) or by the renewal sent on resume
    // (404), not by the local "no renewal for a whole TTL" check that would come later.
    expect(lostReason).toMatch(/seen by a lock watch|not found on renew/);
    await a.stop();
    await b.stop();
  });

  it('rotation: a draining JobDB keeps its retries, a fresh active one takes new jobs, and it is marked drained when empty', async () => {
    const prefix = `${env.prefix}rot/`;
    const sub = new TestEnv(suite.consul.url, prefix);
    const first = await sub.provision('rot1');
    const ws = workspace();
    const d = env.director(testSettings(prefix, { POD_NAME: 'rot' }), { workspace: () => ws });
    await d.start();
    await waitFor(() => d.isReady);
    expect((await postJobs(d.url!, jobs(20, 0))).status).toBe(200);
    const second = await sub.provision('rot2');
    const [entry] = (await listJobDbs(sub.consul, sub.keys)).filter((e) => e.id === first.id);
    expect(await setJobDbState(sub.consul, sub.keys, entry, 'draining')).toBe(true);
    await waitFor(() => d.holder.heldJobDbs().some((h) => h.id === second.id && h.state === 'active'), 10_000);
    expect((await postJobs(d.url!, jobs(5, 100))).status).toBe(200);
    await waitFor(async () => (await listJobDbs(sub.consul, sub.keys)).find((e) => e.id === first.id)?.state === 'drained', 15_000);
    expect(d.holder.heldJobDbs().map((h) => h.id)).toEqual([second.id]);
    const h2 = await historyOf(env, second.database);
    expect(h2.size).toBe(5);
    await d.stop();
    await sub.cleanup();
  });
});
