import { z } from 'zod';

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

// Reusable field types. Names of duration and size variables carry their unit (_MS, _BYTES).

export const port = (def?: number) => {
  const t = z.coerce.number().int().min(0).max(65535);
  return def === undefined ? t : t.default(def);
};

export const positiveInt = (def?: number) => {
  const t = z.coerce.number().int().positive();
  return def === undefined ? t : t.default(def);
};

export const nonNegativeInt = (def?: number) => {
  const t = z.coerce.number().int().min(0);
  return def === undefined ? t : t.default(def);
};

/** "true"/"1" and "false"/"0" only: a typo must fail, not silently read as false. */
export const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true, false, 1 or 0' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

/** Comma-separated `host:port` list, e.g. KAFKA_BROKERS. */
export const hostPortList = () =>
  z
    .string()
    .min(1)
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((list) => list.length > 0 && list.every((hp) => /^[^\s:]+:\d{1,5}$/.test(hp)), {
      message: 'must be a comma-separated list of host:port',
    });

/** `mysql://user:pass@host:port`; the database is chosen by the service. */
export const mysqlUrl = () =>
  z.string().refine((v) => /^mysql:\/\/[^@/\s]*@?[^/\s:]+(:\d+)?\/?$/.test(v) || URL.canParse(v), {
    message: 'must be a URL like mysql://user:pass@host:3306',
  });

export const httpUrl = () => z.string().url({ message: 'must be an http(s) URL' });

export const logLevel = () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');

/** Variables every service reads (DESIGN.md "Env vars"); services extend it. */
export const baseEnv = {
  OPS_PORT: port(9090),
  LOG_LEVEL: logLevel(),
  SHUTDOWN_TIMEOUT_MS: positiveInt(25_000),
};

export const kafkaEnv = {
  KAFKA_BROKERS: hostPortList(),
  CDP_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'may contain only letters, digits, ".", "_" and "-"')
    .default('cdp.'),
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
