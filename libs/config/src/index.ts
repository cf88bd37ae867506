import os from 'node:os';
import { z } from 'zod';
import { logLevel, port, positiveInt } from './fields';

export { z } from 'zod';

/** Thrown when the environment does not satisfy a service's schema; names every bad variable. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses `env` with a service's zod schema of env vars. Every problem is reported at once,
 * naming the variable and what is wrong, never its value (it may be a secret).
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(env)';
    const present = issue.path.length > 0 && env[String(issue.path[0])] !== undefined;
    return `${name}: ${present ? issue.message : `is required (${issue.message})`}`;
  });
  throw new ConfigError(issues);
}

export * from './fields';
export * from './kafka';
export * from './stores';
export * from './director-rpc';

/** This pod's name (the downward API's metadata.name in the charts); names Consul sessions `<service>:<pod>`. */
export const podEnv = {
  POD_NAME: z.string().min(1).default(os.hostname()),
};

/** Variables every service reads (DESIGN.md "Env vars"); services extend it. */
export const baseEnv = {
  OPS_PORT: port(9090),
  LOG_LEVEL: logLevel(),
  SHUTDOWN_TIMEOUT_MS: positiveInt(25_000),
};

/**
 * For a service's main: parse or stop start-up. The message names each bad variable; the exit
 * code is 1 so Kubernetes shows a crash loop with the reason in the pod log.
 */
export function loadConfigOrExit<S extends z.ZodType>(schema: S, service: string, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${JSON.stringify({ level: 'fatal', name: service, msg: `${service} cannot start: ${message}` })}\n`);
    process.exit(1);
  }
}
