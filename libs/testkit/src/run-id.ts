import crypto from 'node:crypto';

// A run id encodes its start time (base36 seconds) so leftovers of crashed runs can be
// recognised and swept by age: databases `cdp_t<run>_<name>`, topic prefixes `t<run>.`.
const RUN_ID = /^([0-9a-z]{6,8})([0-9a-z]{3})$/;

export function newRunId(now = Date.now()): string {
  const time = Math.floor(now / 1000).toString(36);
  const rand = crypto.randomBytes(4).readUInt32BE(0).toString(36).padStart(3, '0').slice(-3);
  return `${time}${rand}`;
}

/** Milliseconds since the run started, or undefined when `id` is not a run id. */
export function runAgeMs(id: string, now = Date.now()): number | undefined {
  const m = RUN_ID.exec(id);
  if (!m) return undefined;
  return now - parseInt(m[1], 36) * 1000;
}

export const SWEEP_AGE_MS = 60 * 60 * 1000;

/** The run id of this test run (set by the harness), or a fresh one outside it. */
export function currentRunId(): string {
  if (!process.env.CDP_TEST_RUN) process.env.CDP_TEST_RUN = newRunId();
  return process.env.CDP_TEST_RUN;
}

/** A short random suffix so names are unique across tests of one run. */
export function uniqueSuffix(): string {
  return crypto.randomBytes(3).toString('hex');
}

/** `cdp_t<run>_<label><rand>`: a MySQL database name for one test. */
export function testDatabaseName(label: string): string {
  return `cdp_t${currentRunId()}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}${uniqueSuffix()}`;
}

/** `t<run>.<label><rand>.`: a topic prefix for one test. */
export function testTopicPrefix(label: string): string {
  return `t${currentRunId()}.${label.replace(/[^a-z0-9_-]/gi, '_').toLowerCase()}${uniqueSuffix()}.`;
}
