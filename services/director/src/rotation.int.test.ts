import mysql from 'mysql2/promise';
import { listJobDbs, setJobDbState } from '@cdp/jobdb';
import { mysqlUrl } from '@cdp/testkit';
import { testSettings, testWorkspace, waitFor, type JobDbHandle, useDirectorSuite } from './testing/harness';
import { checkFinalStates, runRotationLoad, type FinalStateCheck } from './testing/rotation-load';

const suite = useDirectorSuite();

describe('rotation under load', () => {
  it('rotating every second under continuous RPC load: every job answered 2xx reaches exactly one final state', async () => {
    let current: JobDbHandle = await suite.env.provision('rot');
    const ws = testWorkspace([{ id: 'hook', url: `${suite.sink.url}/hook`, maxConcurrency: 50 }]);
    const settings = testSettings(suite.env.prefix, { POD_NAME: 'rotl' });
    const d = suite.env.director(settings, { workspace: () => ws });
    await d.start();
    await waitFor(() => d.isReady);

    // Each rotation happens while the active JobDB's inserts are held up in MariaDB (the test
    // locks every row and gap of `jobs`), as a slow insert would be: inserts that began before
    // the switch to draining commit after it, once the director has taken the next JobDB and run
    // a few passes over the draining one with nothing open in memory.
    const rotate = async () => {
      const next = await suite.env.provision('rot');
      const hold = await mysql.createConnection({ uri: mysqlUrl(), database: current.database });
      try {
        await hold.query('START TRANSACTION');
        await hold.query('SELECT id FROM jobs FOR UPDATE');
        const entry = (await listJobDbs(suite.env.consul, suite.env.keys)).find((e) => e.id === current.id)!;
        expect(await setJobDbState(suite.env.consul, suite.env.keys, entry, 'draining')).toBe(true);
        await waitFor(() => d.holder.heldJobDbs().some((h) => h.id === next.id && h.state === 'active'), 10_000);
        await new Promise((r) => setTimeout(r, 3 * settings.DIRECTOR_RECONCILE_INTERVAL_MS));
        await hold.query('COMMIT');
      } finally {
        await hold.end();
      }
      current = next;
    };
    const load = await runRotationLoad({
      urls: () => [d.url!],
      rotate,
      periods: 6,
      periodMs: 1_000,
      posters: 4,
      batchSize: 10,
      maxBatchesPerPoster: 3_000,
      sourceId: 'web',
      destinationId: 'hook',
      runId: 'rot',
    });
    expect(load.rotations).toBe(5);
    expect(load.accepted.length).toBeGreaterThan(0);

    const databases = () => suite.env.provisioned.map((j) => j.database);
    let check: FinalStateCheck | undefined;
    await waitFor(async () => {
      check = await checkFinalStates(suite.env, databases(), load.accepted);
      return check.missing.length + check.notFinal.length + check.duplicated.length === 0;
    }, 15_000).catch(() => undefined);
    expect(check).toEqual({ missing: [], notFinal: [], duplicated: [] });
    // Every rotated JobDB was drained and released (so the drained decision was exercised five times).
    await waitFor(
      async () => (await listJobDbs(suite.env.consul, suite.env.keys)).filter((e) => e.state === 'drained').length === 5,
      15_000,
    );
    expect(d.holder.heldJobDbs().map((h) => h.id)).toEqual([current.id]);
    await d.stop();
  });
});
