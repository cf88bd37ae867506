import { adminEnv, baseEnv, checkKafkaEnv, dynamodbEnv, kafkaEnv, kafkaWorkerEnv, positiveInt, workspaceEnv, z } from '@cdp/config';

/** The DynamoDB tables of the graph: region, endpoint and the name prefix (shared with `identity-tables`). */
export const identityTablesEnv = {
  ...dynamodbEnv,
  /** Table names start with it (`<prefix>identity-ids`, `<prefix>identity-profiles`). */
  IDENTITY_TABLE_PREFIX: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{0,200}$/, 'letters, digits, "_", "-" and "." only')
    .default('cdp-'),
};

export const identityEnv = z
  .object({
    ...baseEnv,
    ...kafkaEnv,
    ...kafkaWorkerEnv,
    ...workspaceEnv,
    ...identityTablesEnv,
    ...adminEnv,
    /** Profile API requests a second per space (Segment's default limit), with as much burst; 429 beyond. */
    IDENTITY_PROFILE_API_RATE: positiveInt(100),
    /**
     * Stages whose reports a regulation waits for (cdp.regulation-status), comma-separated; a
     * destination with a delete handler is the stage `destination.<destinationId>` (deletions only).
     */
    IDENTITY_REGULATION_STAGES: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$/, 'comma-separated stage names')
      .default('tapi,identity')
      .transform((s) => s.split(',')),
    /** Consumer group of cdp.deduped. */
    IDENTITY_GROUP_ID: z.string().min(1).default('cdp-identity'),
    /** How long an id's profile and a profile record are served from memory before being read again. */
    IDENTITY_CACHE_TTL_MS: positiveInt(5_000),
    /** Entries of each read cache (ids, profiles); the oldest go first. */
    IDENTITY_CACHE_ENTRIES: positiveInt(100_000),
    /** Recent events kept per profile for the Profile API (a ring: the newest replace the oldest). */
    IDENTITY_RECENT_EVENTS_PER_PROFILE: positiveInt(1_000),
    /** Days an event is kept after its time (DynamoDB Time to Live; Segment's lookback is 14 days). */
    IDENTITY_RECENT_EVENTS_DAYS: positiveInt(14),
    /** Partitions of cdp.deduped handled at once by one process. */
    IDENTITY_PARTITIONS_CONCURRENTLY: positiveInt(4),
  })
  .superRefine(checkKafkaEnv);

export type IdentityConfig = z.infer<typeof identityEnv>;
