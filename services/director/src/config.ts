import {
  baseEnv,
  checkDirectorRpcServerEnv,
  checkKafkaEnv,
  checkMysqlEnv,
  consulEnv,
  controlDbEnv,
  directorRpcServerEnv,
  kafkaEnv,
  podEnv,
  nonNegativeInt,
  positiveInt,
  workspaceEnv,
  z,
} from '@cdp/config';
import { DEFAULT_ALLOWED_JOB_HEADERS } from '@cdp/director-rpc';
import { allowListProblem } from './job-headers';

const HOUR_MS = 3_600_000;

export const directorEnv = z
  .object({
    ...baseEnv,
    ...kafkaEnv,
    ...controlDbEnv,
    ...consulEnv,
    ...workspaceEnv,
    ...directorRpcServerEnv,
    ...podEnv,
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
    /** Above this many jobs waiting in memory, RPC answers 503 so transform sends to another director. */
    DIRECTOR_MAX_QUEUED_JOBS: positiveInt(200_000),
    /**
     * Memory the jobs held may take (MemoryBudget): every held job's metadata, plus contents
     * while there is room (the others stay in MySQL until due). A JobDB whose open jobs'
     * metadata does not fit is not taken. 384 MiB: the chart's 1 GiB limit less the heap's
     * own headroom, in-flight calls and pools (services/director/README.md "Memory").
     */
    DIRECTOR_MAX_QUEUED_BYTES: positiveInt(384 * 1024 * 1024),
    DIRECTOR_STATS_INTERVAL_MS: positiveInt(60_000),
    /** Request timeout of action destinations whose definition sets none (Segment's is 10 s). */
    DIRECTOR_ACTIONS_TIMEOUT_MS: positiveInt(10_000),
    /** How long the first job of an action batch waits for more jobs due at the same time. */
    DIRECTOR_ACTIONS_BATCH_LINGER_MS: nonNegativeInt(20),
    /** PEM file of extra CA certificates trusted for action destinations' partners (besides Node's). */
    DIRECTOR_ACTIONS_CA_FILE: z.string().min(1).optional(),
    /**
     * Tests and local development only: every connection of action destinations goes to this
     * loopback `address[:port]` whatever the partner's host (TLS still checks the partner's name,
     * against DIRECTOR_ACTIONS_CA_FILE): partners' HTTPS calls answered by a local sink.
     */
    DIRECTOR_ACTIONS_CONNECT_TO: z
      .string()
      .regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d{1,5})?$/, { error: 'must be a loopback address 127.x.x.x with an optional :port' })
      .optional(),
    DIRECTOR_JOBDB_POOL_SIZE: positiveInt(8),
    /** Most transitions per JobDB write transaction. */
    DIRECTOR_WRITE_BATCH: positiveInt(2_000),
    /**
     * Headers a job may set: comma-separated lower-case names or prefixes ending in `*`; never
     * host, authorization, content-length, x-signature, … (FORBIDDEN_JOB_HEADERS).
     */
    DIRECTOR_RPC_ALLOWED_HEADERS: z
      .string()
      .default(DEFAULT_ALLOWED_JOB_HEADERS.join(','))
      .transform((v) =>
        v
          .split(',')
          .map((e) => e.trim())
          .filter(Boolean),
      )
      .superRefine((entries, ctx) => {
        for (const entry of entries) {
          const problem = allowListProblem(entry);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        }
      }),
  })
  .superRefine(checkKafkaEnv)
  .superRefine(checkMysqlEnv)
  .superRefine(checkDirectorRpcServerEnv);

export type DirectorConfig = z.infer<typeof directorEnv>;
