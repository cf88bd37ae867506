import fs from 'node:fs';
import { z } from 'zod';

// Reusable field types. Names of duration and size variables carry their unit (_MS, _BYTES).
// Messages never repeat the value: it may be a secret.

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
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
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

/** A password or key from a Secret. */
export const secret = () => z.string().min(1, 'must not be empty');

/** A bearer token callers send (`Authorization: Bearer <token>`), from a Secret. */
export const bearerToken = () => z.string().regex(/^[\x21-\x7e]{16,}$/, 'must be at least 16 visible ASCII characters (no spaces)');

/** A database or schema name MySQL accepts without quoting. */
export const databaseName = () => z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'must be 1–64 letters, digits or "_"');

/**
 * A PEM file (a CA bundle) read at load, so a wrong path stops the start naming the variable.
 * The parsed value keeps the path for messages and the contents for the client.
 */
export const pemFile = () =>
  z
    .string()
    .min(1)
    .transform((file, ctx) => {
      try {
        const contents = fs.readFileSync(file, 'utf8');
        if (!contents.includes('-----BEGIN ')) {
          ctx.addIssue({ code: 'custom', message: 'is not a PEM file (no -----BEGIN line)' });
          return z.NEVER;
        }
        return { file, contents };
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})` });
        return z.NEVER;
      }
    });
