// Acceptance (issue 21): a leader frozen with SIGSTOP loses leadership to the standby and, once
// resumed, does not act. Real manager processes (build first), one real director process.
import { waitFor, type ServiceProcess } from '@cdp/testkit';
import { testSettings, useDirectorSuite } from '@cdp/director/src/testing/harness';
import { dropManagedDatabases, leads, startManagerProcess, testManagerSettings } from './testing/manager-harness';

const suite = useDirectorSuite();
const managers: ServiceProcess[] = [];
let settings: ReturnType<typeof testManagerSettings>;

afterAll(async () => {
  for (const p of managers) {
    p.child.kill('SIGCONT');
    await p.stop('SIGKILL');
  }
  if (settings) await dropManagedDatabases(settings);
});

async function startManager(pod: string): Promise<ServiceProcess> {
  const p = await startManagerProcess(settings, pod, suite.consul.url);
  managers.push(p);
  return p;
}

/** What the manager logs when it acts (provision, mark draining, drop). */
const ACTIONS = new Set(['JobDB provisioned (active)', 'JobDB marked draining', 'JobDB dropped']);

function actionsSince(p: ServiceProcess, since: number): string[] {
  return p
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { time: string; msg: string })
    .filter((entry) => Date.parse(entry.time) >= since && ACTIONS.has(entry.msg))
    .map((entry) => `${entry.time} ${entry.msg}`);
}

describe('jobdb-manager leader', () => {
  it('a leader frozen with SIGSTOP is replaced by the standby and, resumed, does not act', async () => {
    const prefix = `${suite.env.prefix}frz/`;
    // Rotation every second: a leader that still believed it leads would act on its next pass.
    // A 3 s session TTL: with 1 s, a loaded machine can expire the new leader's session too.
    settings = testManagerSettings(prefix, {
      JOBDB_ROTATION_PERIOD_MS: 1_000,
      JOBDB_MANAGER_INTERVAL_MS: 200,
      JOBDB_MANAGER_SESSION_TTL_MS: 3_000,
    });
    const m1 = await startManager('f1');
    await waitFor(() => leads(m1), 10_000);
    const m2 = await startManager('f2');
    const d = await suite.env.directorProcess(
      testSettings(prefix, { POD_NAME: 'fd1', CDP_CONTROL_DB: settings.CDP_CONTROL_DB }),
      [{ id: 'hook', url: `${suite.sink.url}/hook` }],
      ['web'],
    );
    await waitFor(() => actionsSince(m1, 0).some((a) => a.endsWith('JobDB marked draining')), 10_000);

    m1.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    await waitFor(() => leads(m2), 15_000);
    // Not before the frozen leader's session expired (TTL after its last renewal, sent every TTL/2)
    // and the lock delay ended.
    expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(
      settings.JOBDB_MANAGER_SESSION_TTL_MS / 2 + settings.JOBDB_MANAGER_LOCK_DELAY_MS - 50,
    );
    await waitFor(() => actionsSince(m2, frozenAt).some((a) => a.endsWith('JobDB marked draining')), 10_000);

    const resumedAt = Date.now();
    m1.child.kill('SIGCONT');
    // Several of its pass periods and rotation periods go by.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(actionsSince(m1, resumedAt)).toEqual([]);
    expect(await leads(m1)).toBe(false);
    expect(await leads(m2)).toBe(true);
    // The standby keeps acting all along.
    expect(actionsSince(m2, resumedAt).length).toBeGreaterThan(0);
    await d.stop();
  });
});
