import {
  adminEnv,
  baseEnv,
  checkDirectorRpcClientEnv,
  checkKafkaEnv,
  directorRpcClientEnv,
  ensureTopicsEnv,
  kafkaEnv,
  kafkaWorkerEnv,
  positiveInt,
  workspaceEnv,
  z,
} from '@cdp/config';

export const transformEnv = z
  .object({
    ...baseEnv,
    ...adminEnv,
    ...kafkaEnv,
    ...kafkaWorkerEnv,
    ...ensureTopicsEnv,
    ...workspaceEnv,
    ...directorRpcClientEnv,
    /** Consumer group of cdp.identified; also names the DLQ's transactional ids. */
    TRANSFORM_GROUP_ID: z.string().min(1).default('cdp-transform'),
    /** Messages of one partition handled (routed and sent as one send() of jobs) at a time. */
    TRANSFORM_CHUNK_MESSAGES: positiveInt(500),
    /** Partitions of cdp.identified handled at once by one process. */
    TRANSFORM_PARTITIONS_CONCURRENTLY: positiveInt(4),
    /** Wall-clock budget of one insert-function call. */
    TRANSFORM_FUNCTION_TIMEOUT_MS: positiveInt(100),
    /** WebAssembly memory all insert functions share, at most. */
    TRANSFORM_FUNCTIONS_MEMORY_MB: positiveInt(128),
    /** Failed calls in a row after which an insert function is disabled. */
    TRANSFORM_FUNCTION_DISABLE_AFTER: positiveInt(20),
  })
  .superRefine((env, ctx) => {
    checkKafkaEnv(env, ctx);
    checkDirectorRpcClientEnv(env, ctx);
  });

export type TransformConfig = z.infer<typeof transformEnv>;
