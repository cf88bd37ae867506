// A director refuses a JobDB whose schema version it does not know: no lock, no lease, counted.
import { jobDbsRefused } from './metrics';
import { testDatabaseName } from '@cdp/testkit';
import { testDirector, testSettings, testWorkspace, useDirectorSuite, waitFor, type TestEnv } from './testing/harness';

const suite = useDirectorSuite();
let env: TestEnv;

beforeAll(() => {
  ({ env } = suite);
});

async function refusals(): Promise<number> {
  return (await jobDbsRefused.get()).values.find((v) => v.labels.reason === 'schema_version')?.value ?? 0;
}

it('refuses a version 1 JobDB (no lock, no lease) and takes a current one', async () => {
  // A JobDB created by the previous release: its transitions table lacks the unique key.
  const old = await env.provision('v1', 'active', async (database) => {
    await env.query(database, 'UPDATE jobdb_meta SET schema_version = 1');
  });
  const before = await refusals();
  const d = env.director(testSettings(env.prefix, { POD_NAME: 'sv' }), { workspace: () => testWorkspace([]) });
  await d.start();
  await waitFor(async () => (await refusals()) > before || d.isReady);
  expect(d.isReady).toBe(false);
  expect(await refusals()).toBe(before + 1);
  const [{ n }] = await env.query(old.database, 'SELECT COUNT(*) AS n FROM leases');
  expect(Number(n)).toBe(0);
  const lock = await env.consul.kv.get(env.keys.jobDbLock(old.id));
  expect(lock?.Session).toBeUndefined();

  const current = await env.provision('v2');
  await waitFor(() => d.isReady);
  expect(d.holder.heldJobDbs().map((h) => h.id)).toEqual([current.id]);
  expect(await refusals()).toBe(before + 1); // logged and counted once, though checked every pass
  await d.stop();
});

it('waits, not ready and holding nothing, until jobdb-manager has migrated cdp_control to the version it needs', async () => {
  const jdb = await env.provision('cs');
  const settings = testSettings(env.prefix, { POD_NAME: 'cs', CDP_CONTROL_DB: testDatabaseName('ctl_wait') });
  // Not through env.director(), which migrates the control database as jobdb-manager would.
  const d = testDirector(settings, env.consulUrl, { workspace: () => testWorkspace([]) });
  let started = false;
  const starting = d.start().then(() => (started = true));
  await new Promise((r) => setTimeout(r, 4 * settings.DIRECTOR_RECONCILE_INTERVAL_MS));
  expect(started).toBe(false);
  expect(d.isReady).toBe(false);
  expect(d.url).toBeUndefined();
  const lock = await env.consul.kv.get(env.keys.jobDbLock(jdb.id));
  expect(lock?.Session).toBeUndefined();

  await env.controlDb(settings.CDP_CONTROL_DB);
  await starting;
  await waitFor(() => d.isReady);
  expect(d.holder.heldJobDbs().map((h) => h.id)).toEqual([jdb.id]);
  await d.stop();
});

it('a stop during that wait ends the start without starting anything', async () => {
  const settings = testSettings(env.prefix, { POD_NAME: 'cs2', CDP_CONTROL_DB: testDatabaseName('ctl_stop') });
  const d = testDirector(settings, env.consulUrl, { workspace: () => testWorkspace([]) });
  const starting = d.start();
  await new Promise((r) => setTimeout(r, 2 * settings.DIRECTOR_RECONCILE_INTERVAL_MS));
  await d.stop();
  await starting;
  expect(d.url).toBeUndefined();
  expect(d.isReady).toBe(false);
});
