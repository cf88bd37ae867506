import { z } from 'zod';
import { bearerToken, bool, nonNegativeInt, port, positiveInt } from './fields';

const directorUrl = () =>
  z.string().refine((v) => /^https?:\/\/[^\s/]+\/?$/.test(v) && URL.canParse(v), { message: 'must be a base URL like http://host:8080' });

/** DIRECTOR_RPC_TOKEN, as the director and its callers both read it: from a Secret. */
const directorRpcTokenEnv = {
  /** Callers send `Authorization: Bearer <token>` (DESIGN.md "Director RPC"); at least 16 visible ASCII characters. */
  DIRECTOR_RPC_TOKEN: bearerToken().optional(),
};

/** The director's side of the RPC (`POST /v1/jobs`); check it with `checkDirectorRpcServerEnv`. */
export const directorRpcServerEnv = {
  ...directorRpcTokenEnv,
  /** The RPC port. */
  PORT: port(8080),
  /** Local development only: without a token the RPC accepts any caller. Ignored when a token is set. */
  DIRECTOR_RPC_INSECURE_NO_TOKEN: bool(false),
  DIRECTOR_RPC_MAX_BODY_BYTES: positiveInt(16 * 1024 * 1024),
  DIRECTOR_RPC_MAX_JOBS: positiveInt(5_000),
};

export function checkDirectorRpcServerEnv(
  env: { DIRECTOR_RPC_TOKEN?: string; DIRECTOR_RPC_INSECURE_NO_TOKEN: boolean },
  ctx: z.RefinementCtx,
): void {
  if (env.DIRECTOR_RPC_TOKEN === undefined && !env.DIRECTOR_RPC_INSECURE_NO_TOKEN) {
    ctx.addIssue({
      code: 'custom',
      path: ['DIRECTOR_RPC_TOKEN'],
      message: 'the RPC token (or DIRECTOR_RPC_INSECURE_NO_TOKEN=true for local development)',
    });
  }
}

/**
 * Env of a director RPC client (transform): spread into the service's schema, then check it
 * with `checkDirectorRpcClientEnv` (exactly one of DIRECTOR_RPC_URLS and DIRECTOR_RPC_SERVICE).
 */
export const directorRpcClientEnv = {
  ...directorRpcTokenEnv,
  /** Comma-separated director base URLs (local runs). */
  DIRECTOR_RPC_URLS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(z.array(directorUrl()).min(1, 'must list at least one URL'))
    .optional(),
  /** Headless Service of the directors, `host[:port]` (port 8080 when absent): every A record is a director. */
  DIRECTOR_RPC_SERVICE: z
    .string()
    .regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'must be host[:port]')
    .optional(),
  DIRECTOR_RPC_DNS_REFRESH_MS: positiveInt(10_000),
  DIRECTOR_RPC_MAX_BATCH_JOBS: positiveInt(1_000),
  /** Below the director's DIRECTOR_RPC_MAX_BODY_BYTES (16 MiB). */
  DIRECTOR_RPC_MAX_BATCH_BYTES: positiveInt(8 * 1024 * 1024),
  /** Batches of one send() in flight at once (each to one director). */
  DIRECTOR_RPC_CONCURRENCY: positiveInt(4),
  DIRECTOR_RPC_TIMEOUT_MS: positiveInt(10_000),
  /** Attempts per batch, the first included. */
  DIRECTOR_RPC_MAX_ATTEMPTS: positiveInt(6),
  DIRECTOR_RPC_BACKOFF_BASE_MS: positiveInt(100),
  DIRECTOR_RPC_BACKOFF_CAP_MS: positiveInt(2_000),
  /** A director that failed an attempt (503, connection error, timeout) gets no new batch for this long. */
  DIRECTOR_RPC_COOLDOWN_MS: nonNegativeInt(5_000),
};

type Discoverable = { DIRECTOR_RPC_URLS?: string[]; DIRECTOR_RPC_SERVICE?: string };

export function checkDirectorRpcClientEnv(env: Discoverable, ctx: z.RefinementCtx): void {
  const given = [env.DIRECTOR_RPC_URLS, env.DIRECTOR_RPC_SERVICE].filter((v) => v !== undefined).length;
  if (given !== 1) {
    ctx.addIssue({ code: 'custom', path: ['DIRECTOR_RPC_URLS'], message: 'set exactly one of DIRECTOR_RPC_URLS and DIRECTOR_RPC_SERVICE' });
  }
}

export const directorRpcClientSchema = z.object(directorRpcClientEnv).superRefine(checkDirectorRpcClientEnv);
export type DirectorRpcClientConfig = z.infer<typeof directorRpcClientSchema>;
