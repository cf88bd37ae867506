// jobdb-manager in process with real directors (in process too), MariaDB and the Consul dev server.
import { JobDb, createJobDbDatabase, dropJobDb, listJobDbs, registerJobDb } from '@cdp/jobdb';
import { ConsulKeys, directorSessionName } from '@cdp/consul';
import { ConsulSession } from '@cdp/consul-lock';
import { createLogger } from '@cdp/log';
import { mysqlUrl, testDatabaseName, waitFor } from '@cdp/testkit';
import { postJobs, testSettings, testWorkspace, useDirectorSuite } from '@cdp/director/src/testing/harness';
import * as m from './metrics';
import { createManagerService, type JobDbManagerService, type JobDbManagerSettings } from './service';
import { dropManagedDatabases, managedDatabases, testManagerSettings } from './testing/manager-harness';

const suite = useDirectorSuite();
const logger = createLogger({ name: 'jobdb-manager-test', level: (process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent' });
const running: Array<{ service: JobDbManagerService; settings: JobDbManagerSettings }> = [];
const sessions: ConsulSession[] = [];

/** A started manager on its own prefix below the suite's. */
async function startManager(name: string, overrides: Partial<JobDbManagerSettings> = {}) {
  const prefix = `${suite.env.prefix}${name}/`;
  const settings = testManagerSettings(prefix, overrides);
  const service = createManagerService(settings, { consul: suite.env.consul, logger });
  running.push({ service, settings });
  await service.start();
  return { service, settings, prefix };
}

/** A started in-process director on the manager's prefix and control database. */
async function startDirector(
  manager: { settings: JobDbManagerSettings; prefix: string },
  pod: string,
  ws: ReturnType<typeof testWorkspace>,
) {
  const d = suite.env.director(testSettings(manager.prefix, { POD_NAME: pod, CDP_CONTROL_DB: manager.settings.CDP_CONTROL_DB }), {
    workspace: () => ws,
  });
  await d.start();
  await waitFor(() => d.isReady, 10_000);
  return d;
}

afterEach(async () => {
  for (const session of sessions.splice(0)) await session.destroy().catch(() => undefined);
  for (const { service, settings } of running.splice(0)) {
    await service.stop();
    await dropManagedDatabases(settings);
  }
});

const counterValue = async (
  metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> },
  labels: Record<string, string> = {},
) =>
  (await metric.get()).values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);

async function states(prefix: string) {
  const entries = await listJobDbs(suite.env.consul, new ConsulKeys(prefix));
  return { entries, active: entries.filter((e) => e.state === 'active'), held: entries.filter((e) => e.holder !== undefined) };
}

describe('jobdb-manager', () => {
  it('keeps one active JobDB per live director plus the spare; a stopped director’s JobDB is drained by the other and dropped', async () => {
    const mgr = await startManager('a');
    const { prefix, settings } = mgr;
    await waitFor(async () => (await states(prefix)).active.length === 1, 10_000);
    expect(await managedDatabases(settings)).toHaveLength(1);

    // m-a2's first attempt fails: it is still waiting for its retry when its director stops.
    let a2Delivered = 0;
    suite.sink.route('/flaky', (req) => {
      if (!req.body.includes('m-a2')) return { status: 200 };
      if (a2Delivered++ === 0) return { status: 500 };
      return { status: 200 };
    });
    const ws = testWorkspace([{ id: 'hook', url: `${suite.sink.url}/flaky` }]);
    const d1 = await startDirector(mgr, 'a1', ws);
    const d2 = await startDirector(mgr, 'a2', ws);
    await waitFor(async () => {
      const s = await states(prefix);
      return s.active.length === 3 && s.held.length === 2;
    }, 10_000);

    const accepted = await postJobs(d2.url!, [
      {
        sourceId: 'web',
        messageId: 'm-a2',
        destinationId: 'hook',
        subscriptionId: 'default',
        payload: { type: 'track', messageId: 'm-a2', event: 'E' },
      },
    ]);
    expect(accepted.status).toBe(200);
    const d2JobDb = d2.holder.heldJobDbs()[0].id;
    const dropsBefore = await counterValue(m.drops, { kind: 'drained' });
    const orphansBefore = await counterValue(m.orphansMarked);
    await d2.stop();

    // Its active JobDB had a lease and lost its holder: marked draining, adopted, drained, dropped.
    await waitFor(async () => !(await states(prefix)).entries.some((e) => e.id === d2JobDb), 15_000);
    expect(await counterValue(m.orphansMarked)).toBe(orphansBefore + 1);
    await waitFor(async () => (await counterValue(m.drops, { kind: 'drained' })) === dropsBefore + 1, 5_000);
    // One director left: its JobDB plus the spare.
    await waitFor(async () => (await states(prefix)).active.length === 2, 10_000);
    await waitFor(async () => (await managedDatabases(settings)).length === 2, 10_000);
    const left = (await states(prefix)).entries.map((e) => e.dsnRef).sort();
    expect((await managedDatabases(settings)).sort()).toEqual(left);
    // Failed once (d2), delivered once (d1 after adopting it).
    expect(a2Delivered).toBe(2);
    await d1.stop();
  });

  it('rotates an active JobDB after the rotation period; the holder moves on and the rotated one is dropped', async () => {
    const mgr = await startManager('b', { JOBDB_ROTATION_PERIOD_MS: 1_000, JOBDB_SPARE: 0 });
    const { prefix, settings } = mgr;
    const d = await startDirector(mgr, 'b1', testWorkspace([{ id: 'hook', url: `${suite.sink.url}/hook` }]));
    const first = d.holder.heldJobDbs()[0].id;
    const rotationsBefore = await counterValue(m.rotations, { reason: 'age' });
    await waitFor(() => d.holder.heldJobDbs().some((h) => h.id !== first && h.state === 'active'), 10_000);
    await waitFor(async () => !(await states(prefix)).entries.some((e) => e.id === first), 10_000);
    expect(await counterValue(m.rotations, { reason: 'age' })).toBeGreaterThan(rotationsBefore);
    expect((await managedDatabases(settings)).some((db) => db.endsWith(first))).toBe(false);
    await d.stop();
  });

  it('drops unused spares when directors go away, down to live directors + spare', async () => {
    const { prefix, settings } = await startManager('d');
    // Two directors that never take a JobDB (only their sessions count).
    const sessions = await Promise.all(
      ['d1', 'd2'].map((pod) => ConsulSession.create(suite.env.consul, { name: directorSessionName(pod), ttl: '10s', logger })),
    );
    await waitFor(async () => (await states(prefix)).active.length === 3, 10_000);
    const sparesBefore = await counterValue(m.drops, { kind: 'spare' });
    for (const session of sessions) await session.destroy();
    await waitFor(async () => (await states(prefix)).active.length === 1, 10_000);
    await waitFor(async () => (await managedDatabases(settings)).length === 1, 5_000);
    await waitFor(async () => (await counterValue(m.drops, { kind: 'spare' })) === sparesBefore + 2, 5_000);
  });

  it('a frozen leader, resumed after the standby took over, acts on nothing: its pass stops at the first action', async () => {
    // Its passes run only when elected and when the test says (no timer runs in a frozen process).
    const a = await startManager('e', { JOBDB_MANAGER_INTERVAL_MS: 3_600_000 });
    await waitFor(async () => (await states(a.prefix)).active.length === 1, 10_000);
    // The standby on the same prefix (and database prefix).
    const b = createManagerService(
      { ...a.settings, POD_NAME: 'standby', JOBDB_MANAGER_INTERVAL_MS: 200 },
      { consul: suite.env.consul, logger },
    );
    running.push({ service: b, settings: a.settings });
    await b.start();
    a.service.leader.freeze();
    await waitFor(() => b.leader.isLeader, 10_000);
    // Work for a leader: a director session appears, so one more active JobDB is due.
    const director = await ConsulSession.create(suite.env.consul, { name: 'director:e1', ttl: '10s', logger });
    await waitFor(async () => (await states(a.prefix)).active.length === 2, 10_000);
    await b.stop();
    await ConsulSession.create(suite.env.consul, { name: 'director:e2', ttl: '10s', logger }).then((s) => sessions.push(s));
    // The frozen one still believes it leads; its pass confirms before provisioning, and stops.
    expect(a.service.leader.isLeader).toBe(true);
    const provisionedBefore = await counterValue(m.provisioned);
    await a.service.manager.runPass();
    expect(await counterValue(m.provisioned)).toBe(provisionedBefore);
    expect((await states(a.prefix)).active).toHaveLength(2);
    expect(a.service.leader.isLeader).toBe(false);
    await director.destroy();
  });

  it('does not drop a drained JobDB that still holds a non-final job: moves it back to draining', async () => {
    const prefix = `${suite.env.prefix}c/`;
    const settings = testManagerSettings(prefix, { JOBDB_SPARE: 0 });
    const svc = createManagerService(settings, { consul: suite.env.consul, logger });
    running.push({ service: svc, settings });
    const database = testDatabaseName('jdb_open');
    const id = `open${Math.random().toString(36).slice(2, 7)}`;
    // Filled before registration: a job with no final state, in a JobDB someone marked drained.
    await createJobDbDatabase(mysqlUrl(), database, id);
    const db = new JobDb({ url: mysqlUrl(), database });
    const lease = await db.takeLease({ fencingToken: 1, lockIndex: 1, holder: 'test', sessionId: 'test' });
    const now = Date.now();
    await db.insertJobs(lease, [
      {
        sourceId: 'web',
        messageId: 'open-1',
        destinationId: 'hook',
        subscriptionId: 'default',
        payload: '{}',
        headers: {},
        receivedAt: new Date(now),
        expiresAt: new Date(now + 60_000),
      },
    ]);
    await db.close();
    const refusedBefore = await counterValue(m.dropsRefused);
    await registerJobDb(suite.env.consul, new ConsulKeys(prefix), id, {
      state: 'drained',
      dsnRef: database,
      createdAt: new Date().toISOString(),
    });
    await svc.start();
    await waitFor(async () => (await states(prefix)).entries.find((e) => e.id === id)?.state === 'draining', 10_000);
    expect(await counterValue(m.dropsRefused)).toBe(refusedBefore + 1);
    expect(await suite.env.query(database, 'SELECT 1 FROM jobs')).toHaveLength(1);
    await svc.stop();
    await dropJobDb({ url: mysqlUrl(), consul: suite.env.consul, keys: new ConsulKeys(prefix), id, database });
  });
});
