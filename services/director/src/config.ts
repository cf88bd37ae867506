import os from 'node:os';
import { baseEnv, bool, kafkaEnv, mysqlUrl, nonNegativeInt, port, positiveInt, z } from '@cdp/config';
import { DEFAULT_ALLOWED_JOB_HEADERS, rpcToken } from '@cdp/director-rpc';
import { allowListProblem } from './job-headers';

const HOUR_MS = 3_600_000;

export const directorEnv = z
  .object({
    ...baseEnv,
    ...kafkaEnv,
    /** The RPC port (`POST /v1/jobs`). */
    PORT: port(8080),
    MYSQL_URL: mysqlUrl(),
    CDP_CONTROL_DB: z.string().regex(/^[A-Za-z0-9_]{1,64}$/).default('cdp_control'),
    CONSUL_HTTP_ADDR: z.string().min(1),
    CDP_CONSUL_PREFIX: z.string().regex(/^[A-Za-z0-9_/-]*$/).default('cdp/'),
    CDP_WORKSPACE_FILE: z.string().min(1),
    /** Names the Consul session `director:<pod>`; the pod name in Kubernetes. */
    POD_NAME: z.string().min(1).default(os.hostname()),
    DIRECTOR_SESSION_TTL_MS: positiveInt(10_000),
    DIRECTOR_LOCK_DELAY_MS: nonNegativeInt(15_000),
    /** Default retry window when neither the job nor the destination sets one. */
    DIRECTOR_RETRY_WINDOW_MS: positiveInt(4 * HOUR_MS),
    DIRECTOR_BACKOFF_BASE_MS: positiveInt(1_000),
    DIRECTOR_BACKOFF_CAP_MS: positiveInt(10 * 60_000),
    DIRECTOR_MAX_IN_FLIGHT: positiveInt(2_000),
    DIRECTOR_CONNECTIONS_PER_ORIGIN: positiveInt(128),
    DIRECTOR_BREAKER_FAILURES: positiveInt(20),
    DIRECTOR_BREAKER_OPEN_MS: positiveInt(1_000),
    DIRECTOR_BREAKER_MAX_OPEN_MS: positiveInt(60_000),
    /** How long SIGTERM waits for in-flight HTTP calls before persisting what it has. */
    DIRECTOR_DRAIN_TIMEOUT_MS: positiveInt(15_000),
    /** Period of the lock/adoption pass besides Consul watch events (lock-delay ends silently). */
    DIRECTOR_RECONCILE_INTERVAL_MS: positiveInt(2_000),
    DIRECTOR_RPC_MAX_BODY_BYTES: positiveInt(16 * 1024 * 1024),
    DIRECTOR_RPC_MAX_JOBS: positiveInt(5_000),
    /** Above this many jobs waiting in memory, RPC answers 503 so transform sends to another director. */
    DIRECTOR_MAX_QUEUED_JOBS: positiveInt(200_000),
    DIRECTOR_STATS_INTERVAL_MS: positiveInt(60_000),
    DIRECTOR_JOBDB_POOL_SIZE: positiveInt(8),
    /** Most transitions per JobDB write transaction. */
    DIRECTOR_WRITE_BATCH: positiveInt(2_000),
    /**
     * Callers must send `Authorization: Bearer <token>` (DESIGN.md "Director RPC"); from a
     * Secret. At least 16 visible ASCII characters.
     */
    DIRECTOR_RPC_TOKEN: rpcToken().optional(),
    /** Local development only: without a token the RPC accepts any caller. Ignored when a token is set. */
    DIRECTOR_RPC_INSECURE_NO_TOKEN: bool(false),
    /**
     * Headers a job may set: comma-separated lower-case names or prefixes ending in `*`; never
     * host, authorization, content-length, x-signature, … (FORBIDDEN_JOB_HEADERS).
     */
    DIRECTOR_RPC_ALLOWED_HEADERS: z
      .string()
      .default(DEFAULT_ALLOWED_JOB_HEADERS.join(','))
      .transform((v) => v.split(',').map((e) => e.trim()).filter(Boolean))
      .superRefine((entries, ctx) => {
        for (const entry of entries) {
          const problem = allowListProblem(entry);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }
      }),
  })
  .superRefine((env, ctx) => {
    if (env.DIRECTOR_RPC_TOKEN === undefined && !env.DIRECTOR_RPC_INSECURE_NO_TOKEN) {
      ctx.addIssue({ code: 'custom', path: ['DIRECTOR_RPC_TOKEN'], message: 'the RPC token (or DIRECTOR_RPC_INSECURE_NO_TOKEN=true for local development)' });
    }
  });

export type DirectorConfig = z.infer<typeof directorEnv>;
