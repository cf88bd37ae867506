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
