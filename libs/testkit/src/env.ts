/** Reads a harness-provided endpoint, failing with a message that says how to get one. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run integration tests through jest's integration project (its globalSetup starts the harness) or after \`pnpm infra up\``,
    );
  }
  return value;
}

/**
 * A test's size from the environment variable `name` (e.g. `DEDUP_TEST_BACKLOG_MB`), `fallback`
 * when it is unset or empty: CI runs the fallback, a longer variant sets the variable (the
 * package's README gives the command). A value that is not a positive number, or is below `min`
 * (the smallest size at which the test still tests what it says), fails the test at once.
 */
export function testSize(name: string, fallback: number, options: { min?: number } = {}): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  const { min } = options;
  if (!Number.isFinite(value) || value <= 0 || (min !== undefined && value < min)) {
    throw new Error(`${name}=${raw}: expected a positive number${min === undefined ? '' : ` of at least ${min}`}`);
  }
  return value;
}
