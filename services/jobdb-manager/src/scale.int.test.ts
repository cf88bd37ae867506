// Acceptance (issue 21), scale: real director processes come and go under continuous RPC load
// while a real jobdb-manager process hands their JobDBs on and drops them. One director, two
// added, the first two SIGTERMed (each JobDB it held is adopted, drained and dropped), a fourth
// added and the third SIGKILLed. Build first (`pnpm -s build`): the processes run dist/.
import { ConsulKeys } from '@cdp/consul';
import { listJobDbs } from '@cdp/jobdb';
import { metricValue, sleep, waitFor, type SinkRequest } from '@cdp/testkit';
import { jobDbBound } from './manager';
import { leads, managedDatabases, managedDirectorSettings, useManagerLoadSuite } from './testing/manager-harness';

/** Seconds of load: 30 (CI), longer with JOBDB_SCALE_TEST_SECONDS=300; the steps keep their share of it. */
const suite = useManagerLoadSuite('JOBDB_SCALE_TEST_SECONDS');
const LOAD_SECONDS = suite.loadSeconds;
// Long enough that no job expires undelivered on a loaded machine (an expired job is archived, not delivered).
const RETRY_WINDOW_MS = 120_000;
/** A duplicate counts as "in flight" at the SIGKILL when the killed director's delivery was answered at most this long before it. */
const IN_FLIGHT_WINDOW_MS = 10_000;

describe('jobdb-manager scale-in under load', () => {
  it(
    `1 director, 2 added, 2 SIGTERMed, 1 added, 1 SIGKILLed over ${LOAD_SECONDS} s of load: no accepted job lost, duplicates only among the SIGKILLed one's deliveries in flight, every removed director's JobDB dropped`,
    async () => {
      const settings = suite.managerSettings('scale', { JOBDB_RETRY_WINDOW_MS: RETRY_WINDOW_MS });
      const prefix = settings.CDP_CONSUL_PREFIX;
      const keys = new ConsulKeys(prefix);
      const mgr = await suite.startManager(settings, 'sm1');
      await waitFor(() => leads(mgr), 10_000);

      // Each director delivers to a path of its own, so the sink tells who delivered what.
      const start = (pod: string) =>
        suite.env.directorProcess(
          managedDirectorSettings(prefix, settings, pod),
          [{ id: 'hook', url: `${suite.sink.url}/hook/${pod}`, maxConcurrency: 50 }],
          ['web'],
        );
      type Director = Awaited<ReturnType<typeof start>>;
      const live = new Map<string, Director>();
      const urls = () => [...live.values()].map((d) => d.url);
      live.set('sd1', await start('sd1'));

      const sampler = suite.sampleDatabases(settings);
      // JobDBs held by each removed director just before its signal (its own and any it adopted).
      const removedJobDbs = new Set<string>();
      const remove = async (pod: string, signal: 'SIGTERM' | 'SIGKILL') => {
        const d = live.get(pod)!;
        for (const h of await d.held()) removedJobDbs.add(h.id);
        const at = Date.now();
        // Still among the load's targets while it drains (a SIGTERMed director answers 503).
        await d.kill(signal);
        live.delete(pod);
        return at;
      };
      const t0 = Date.now();
      const at = (share: number) => sleep(Math.max(0, t0 + share * LOAD_SECONDS * 1_000 - Date.now()));
      let killedAt = 0;
      let mostDirectors = 1;
      const scenario = (async () => {
        await at(0.15);
        const [d2, d3] = await Promise.all([start('sd2'), start('sd3')]);
        live.set('sd2', d2).set('sd3', d3);
        mostDirectors = 3;
        await at(0.4);
        await remove('sd1', 'SIGTERM');
        await at(0.5);
        await remove('sd2', 'SIGTERM');
        await at(0.6);
        live.set('sd4', await start('sd4'));
        await at(0.65);
        killedAt = await remove('sd3', 'SIGKILL');
      })();
      const load = await suite.runLoad(urls, LOAD_SECONDS, 'scale');
      await scenario;
      expect(load.accepted.length).toBeGreaterThan(0);

      // No accepted job lost: each reaches the sink (the SIGKILLed director's JobDBs wait for its
      // session's TTL, then sd4 adopts them).
      const delivered = await suite.deliveries('/hook', load.accepted);
      expect(load.accepted.filter((id) => !delivered.has(id))).toEqual([]);

      // Duplicates: only jobs the SIGKILLed director was delivering when it died (answered by the
      // sink, outcome not yet committed), delivered once more by their next holder. Jobs of the
      // SIGTERMed directors (drained: outcomes committed, locks released) are delivered once.
      const inFlightAtKill = (r: SinkRequest) => r.path === '/hook/sd3' && (r.answeredAt ?? r.at) >= killedAt - IN_FLIGHT_WINDOW_MS;
      const duplicated = load.accepted.filter((id) => delivered.get(id)!.length > 1);
      const unexplained = duplicated.filter((id) => {
        const requests = delivered.get(id)!;
        return requests.filter(inFlightAtKill).length !== 1 || requests.length !== 2;
      });
      expect(unexplained.map((id) => ({ id, deliveries: delivered.get(id)!.map((r) => ({ path: r.path, at: r.at })) }))).toEqual([]);

      // Every JobDB the removed directors held was adopted, drained and dropped: gone from Consul
      // and MariaDB. What stays is sd4's active JobDB and the spare.
      const removedDatabases = [...removedJobDbs].map((id) => `${settings.JOBDB_DATABASE_PREFIX}${id}`);
      const settled = async () => {
        const registered = await listJobDbs(suite.env.consul, keys);
        const databases = await managedDatabases(settings);
        return registered.every((e) => !removedJobDbs.has(e.id)) && removedDatabases.every((db) => !databases.includes(db));
      };
      await waitFor(settled, 60_000).catch(() => undefined);
      const registered = await listJobDbs(suite.env.consul, keys);
      expect(registered.filter((e) => removedJobDbs.has(e.id)).map((e) => `${e.id} ${e.state} holder ${e.holder ?? '-'}`)).toEqual([]);
      const left = await managedDatabases(settings);
      expect(removedDatabases.filter((db) => left.includes(db))).toEqual([]);
      expect(left.sort()).toEqual(registered.map((e) => e.dsnRef).sort());
      expect(registered.map((e) => e.state)).toEqual(['active', 'active']);

      const metrics = await mgr.metrics();
      expect(metricValue(metrics, 'cdp_jobdb_manager_drops_total', { kind: 'drained' })).toBeGreaterThanOrEqual(3);
      expect(metricValue(metrics, 'cdp_jobdb_manager_drops_refused_total')).toBe(0);
      const { seen, most } = await sampler.stop();
      const bound = jobDbBound(mostDirectors, RETRY_WINDOW_MS, settings.JOBDB_ROTATION_PERIOD_MS, settings.JOBDB_SPARE);
      expect(most).toBeLessThanOrEqual(bound);

      const sentByKilled = [...delivered.values()].flat().filter((r) => r.path === '/hook/sd3').length;
      console.log(
        `scale acceptance: ${load.accepted.length} jobs accepted over ${LOAD_SECONDS} s (${load.refusedBatches} batches refused while directors came and went), ` +
          `${duplicated.length} delivered twice, all in flight at sd3's SIGKILL (sd3 delivered ${sentByKilled}); ` +
          `${removedJobDbs.size} JobDBs of removed directors dropped, ${seen.size} JobDBs in all, at most ${most} at once (bound ${bound})`,
      );
      for (const d of live.values()) await d.stop();
    },
    suite.timeoutMs,
  );
});
