import { adminEnv, baseEnv, checkMysqlEnv, consulEnv, controlDbEnv, podEnv, nonNegativeInt, positiveInt, z } from '@cdp/config';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export const managerEnv = z
  .object({
    ...baseEnv,
    // MYSQL_URL: jobdb-manager's own credentials, which may CREATE and DROP databases (directors' cannot DROP).
    ...controlDbEnv,
    ...consulEnv,
    ...podEnv,
    // The admin API and the Event Delivery page (every replica serves them; a standby too).
    ...adminEnv,
    JOBDB_MANAGER_SESSION_TTL_MS: positiveInt(10_000),
    /** After a leader's session is invalidated, nobody leads for this long (its last actions settle). */
    JOBDB_MANAGER_LOCK_DELAY_MS: nonNegativeInt(15_000),
    /** Period of the leader's pass (provision, rotate, orphans, drops) and of a standby's election attempt. */
    JOBDB_MANAGER_INTERVAL_MS: positiveInt(5_000),
    /** `active` JobDBs kept free beyond one per live director, so a new director finds one at once. */
    JOBDB_SPARE: nonNegativeInt(1),
    /** An `active` JobDB becomes `draining` this long after a director first took it. */
    JOBDB_ROTATION_PERIOD_MS: positiveInt(30 * MINUTE_MS),
    /** Rotate earlier above this many jobs (InnoDB's row estimate); 0: no limit. */
    JOBDB_MAX_JOBS: nonNegativeInt(0),
    /** Rotate earlier above this many data + index bytes; 0: no limit. */
    JOBDB_MAX_BYTES: nonNegativeInt(0),
    /** The directors' retry window (DIRECTOR_RETRY_WINDOW_MS): sets the bound on the number of JobDBs. */
    JOBDB_RETRY_WINDOW_MS: positiveInt(4 * 60 * MINUTE_MS),
    /** A JobDB without a live holder this long is flagged (log line and gauge). */
    JOBDB_ORPHAN_ALERT_MS: positiveInt(5 * MINUTE_MS),
    /** Database names of provisioned JobDBs: this prefix plus the JobDB id. */
    JOBDB_DATABASE_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,40}$/)
      .default('cdp_jobdb_'),
    /** Period of the oldest-pending-job scan (heavier than a pass). */
    JOBDB_STATS_INTERVAL_MS: positiveInt(30_000),
    /** cdp_control.delivery_stats rows older than this are deleted (at least a day: the Event Delivery API shows the last day). */
    DELIVERY_STATS_RETENTION_MS: z.coerce
      .number()
      .int()
      .min(DAY_MS, 'must be at least 86400000 (one day: the Event Delivery API shows the last day)')
      .default(7 * DAY_MS),
    /** Period of the leader's delivery-stats prune. */
    DELIVERY_STATS_PRUNE_INTERVAL_MS: positiveInt(10 * MINUTE_MS),
  })
  .superRefine(checkMysqlEnv);

export type ManagerConfig = z.infer<typeof managerEnv>;
