import { newRunId, runAgeMs, testDatabaseName, testTopicPrefix } from './run-id';

describe('run ids', () => {
  it('encode their start time so leftovers can be swept by age', () => {
    const now = Date.parse('2026-11-24T10:00:00Z');
    const id = newRunId(now);
    expect(id).toMatch(/^[0-9a-z]{9,11}$/);
    expect(runAgeMs(id, now + 5_000)).toBe(5_000);
    expect(runAgeMs('not-a-run', now)).toBeUndefined();
  });
  it('name test databases and topic prefixes after the run', () => {
    process.env.CDP_TEST_RUN = 'abc123xyz';
    expect(testDatabaseName('JobDB-1')).toMatch(/^cdp_tabc123xyz_jobdb_1[0-9a-f]{6}$/);
    expect(testTopicPrefix('dedup')).toMatch(/^tabc123xyz\.dedup[0-9a-f]{6}\.$/);
  });
});
