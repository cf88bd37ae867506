// DIRECTOR_MAX_QUEUED_BYTES: an orphaned JobDB whose open jobs' payloads are many times the
// budget is adopted by a real director process and fully delivered while the process's peak
// RSS stays under a stated limit; a director whose budget cannot hold even the jobs' metadata
// does not take the JobDB, and says so (log line + metric). Forks dist/testing/director-process.js
// (build first).
import { listJobDbs } from '@cdp/jobdb';
import { createLogger } from '@cdp/log';
import { mysqlUrl, peakRssBytes } from '@cdp/testkit';
import { JOB_METADATA_BYTES } from './budget';
import { jobDbsRefused } from './metrics';
import { fillOpenJobs } from './testing/open-jobs';
import { testSettings, testWorkspace, useDirectorSuite, waitFor } from './testing/harness';

const suite = useDirectorSuite();

const refusedForBudget = async () => (await jobDbsRefused.get()).values.find((v) => v.labels.reason === 'memory_budget')?.value ?? 0;

const JOBS = 12_000;
const PAD_BYTES = 20_000;
/** 240 MB of payloads against an 8 MiB budget. */
const BUDGET_BYTES = 8 * 1024 * 1024;
/**
 * The director process's peak RSS must stay below this. Measured on the 2-core machine: 138 MB
 * for a director that adopts 50 such jobs, 212-265 MB for 6,000-12,000 (the heap is ~30 MB after
 * each full GC; V8 lets it grow to ~115 MB between them). Adoption as it was (one query for every
 * open job with its payload) held all 240 MB of payloads at once on top of the 138 MB.
 */
const RSS_LIMIT_BYTES = 320 * 1024 * 1024;

describe('memory bounded in bytes', () => {
  let orphan: { id: string; database: string };

  beforeAll(async () => {
    const { env } = suite;
    orphan = await env.provision('big', 'draining', async (database) => {
      const { seconds } = await fillOpenJobs(mysqlUrl(), database, {
        count: JOBS,
        padBytes: PAD_BYTES,
        destinationId: 'big',
        sources: 3,
        expiresInMs: 3_600_000,
        tag: 'big',
      });
      console.log(`filled ${JOBS} open jobs of ${PAD_BYTES} B payloads in ${seconds.toFixed(1)} s`);
    });
  });

  it('a director whose budget cannot hold the metadata of the open jobs does not adopt the JobDB, and says so', async () => {
    const { env, sink } = suite;
    await env.provision('small', 'active');
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      name: 'director-test',
      level: 'info',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    // Room for the metadata of half the jobs.
    const budget = (JOBS / 2) * JOB_METADATA_BYTES;
    const director = env.director(testSettings(env.prefix, { DIRECTOR_MAX_QUEUED_BYTES: budget }), {
      workspace: () => testWorkspace([{ id: 'big', url: `${sink.url}/big` }], ['src0', 'src1', 'src2']),
      logger,
    });
    const before = await refusedForBudget();
    await director.start();
    await waitFor(() => lines.some((l) => String(l.msg).startsWith('not taking JobDB')), 10_000);
    const line = lines.find((l) => String(l.msg).startsWith('not taking JobDB'))!;
    expect(line).toMatchObject({ jobDb: orphan.id, openJobs: JOBS, maxQueuedBytes: budget });
    expect(await refusedForBudget()).toBe(before + 1);
    // Several passes later: still not taken, no lease appended, nothing delivered.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(director.holder.heldJobDbs().some((h) => h.id === orphan.id)).toBe(false);
    const leases = await env.query(orphan.database, 'SELECT COUNT(*) AS n FROM leases');
    expect(Number(leases[0].n)).toBe(1);
    expect(sink.count('/big')).toBe(0);
    expect(lines.filter((l) => String(l.msg).startsWith('not taking JobDB'))).toHaveLength(1);
    await director.stop();
  });

  it(`a director process with an 8 MiB budget adopts ${JOBS} open jobs of 20 KB (240 MB), delivers every one, peak RSS under 320 MB`, async () => {
    const { env, sink } = suite;
    await env.provision('proc', 'active');
    const seen = new Set<string>();
    let wrongBody = 0;
    sink.route('/big', (req) => {
      const body = JSON.parse(req.body) as { messageId: string; pad: string };
      if (body.pad.length !== PAD_BYTES) wrongBody += 1;
      seen.add(body.messageId);
      req.body = ''; // the sink keeps requests; not their 20 KB bodies
      return { status: 200 };
    });
    const director = await env.directorProcess(
      testSettings(env.prefix, { DIRECTOR_MAX_QUEUED_BYTES: BUDGET_BYTES, DIRECTOR_MAX_IN_FLIGHT: 64 }),
      [{ id: 'big', url: `${sink.url}/big`, maxConcurrency: 64 }],
      ['src0', 'src1', 'src2'],
    );
    await waitFor(async () => (await listJobDbs(env.consul, env.keys)).find((e) => e.id === orphan.id)?.state === 'drained', 120_000, 500);
    const [row] = await env.query(
      orphan.database,
      "SELECT COUNT(DISTINCT job_id) AS n FROM job_state_transitions WHERE to_state = 'succeeded'",
    );
    expect(Number(row.n)).toBe(JOBS);
    expect(seen.size).toBe(JOBS);
    expect(wrongBody).toBe(0);
    const peak = peakRssBytes(director.pid);
    console.log(
      `director process peak RSS ${(peak / 1048576).toFixed(0)} MB with a ${BUDGET_BYTES / 1048576} MiB budget for ${(JOBS * PAD_BYTES) / 1e6} MB of payloads`,
    );
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(RSS_LIMIT_BYTES);
  }, 180_000);
});
