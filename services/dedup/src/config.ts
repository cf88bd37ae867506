import {
  baseEnv,
  checkKafkaEnv,
  dedupWindowEnv,
  ensureTopicsEnv,
  kafkaConsumerEnv,
  kafkaEnv,
  nonNegativeInt,
  positiveInt,
  z,
} from '@cdp/config';

export const dedupEnv = z
  .object({
    ...baseEnv,
    ...kafkaEnv,
    ...kafkaConsumerEnv,
    ...ensureTopicsEnv,
    ...dedupWindowEnv,
    /** Consumer group of cdp.ingest; also names the transactional ids (`<group>-<partition>`). */
    DEDUP_GROUP_ID: z.string().min(1).default('cdp-dedup'),
    /** Where the per-partition level stores live (the StatefulSet volume). */
    DEDUP_DATA_DIR: z.string().min(1).default('/var/lib/cdp-dedup'),
    DEDUP_BLOOM_FPR: z.coerce.number().gt(0).lt(1).default(0.01),
    DEDUP_BLOOM_MIN_KEYS: positiveInt(1_000_000),
    DEDUP_STORE_CACHE_BYTES: positiveInt(8 * 1024 * 1024),
    DEDUP_PURGE_INTERVAL_MS: positiveInt(60_000),
    DEDUP_PARTITIONS_CONCURRENTLY: positiveInt(4),
    /** Output-tail repairs running at once (takeovers beyond it wait): bounds repair memory. */
    DEDUP_REPAIR_CONCURRENCY: positiveInt(1),
    /**
     * Fault injection for crash tests only: signal the process at this point with this
     * probability. SIGKILL kills it; SIGSTOP freezes it (once per process) until a SIGCONT, as a
     * long GC pause or a network split would. Never set in production.
     */
    DEDUP_FAULT_POINT: z.enum(['none', 'after-send', 'after-commit', 'during-repair']).default('none'),
    DEDUP_FAULT_SIGNAL: z.enum(['SIGKILL', 'SIGSTOP']).default('SIGKILL'),
    DEDUP_FAULT_PROBABILITY: z.coerce.number().min(0).max(1).default(0),
    DEDUP_FAULT_AFTER_MS: nonNegativeInt(0),
  })
  .superRefine(checkKafkaEnv);

export type DedupConfig = z.infer<typeof dedupEnv>;
