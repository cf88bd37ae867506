import {
  adminEnv,
  baseEnv,
  checkKafkaEnv,
  ensureTopicsEnv,
  kafkaConsumerEnv,
  kafkaEnv,
  positiveInt,
  s3Env,
  workspaceEnv,
  z,
} from '@cdp/config';
import { MIN_PART_SIZE_BYTES } from './writer';

export const archiverEnv = z
  .object({
    ...baseEnv,
    ...kafkaEnv,
    ...kafkaConsumerEnv,
    ...ensureTopicsEnv,
    ...s3Env,
    /** Maps each source to its space, for the regulations of cdp.regulations (keyed spaceId:userId). */
    ...workspaceEnv,
    ARCHIVER_GROUP_ID: z.string().min(1).default('cdp-archiver'),
    /** A partition's buffer is uploaded once it holds this many bytes of records (uncompressed)... */
    ARCHIVER_FLUSH_BYTES: positiveInt(64 * 1024 * 1024),
    /** ...or once its oldest record waited this long. */
    ARCHIVER_FLUSH_AGE_MS: positiveInt(60_000),
    /** Objects above this size go up in parts of it (multipart upload); S3's minimum is 5 MiB. */
    ARCHIVER_PART_SIZE_BYTES: z.coerce
      .number()
      .int()
      .min(MIN_PART_SIZE_BYTES, `must be at least ${MIN_PART_SIZE_BYTES} (5 MiB)`)
      .default(8 * 1024 * 1024),
    ARCHIVER_PARTITIONS_CONCURRENTLY: positiveInt(4),
    /** The admin API (replays): ADMIN_PORT, ADMIN_TOKEN. */
    ...adminEnv,
    /** The address the admin API listens on. */
    HOST: z.string().min(1).default('0.0.0.0'),
    /** Events per second of a replay that names no rate: keeps live traffic's latency while history is re-read. */
    ARCHIVER_REPLAY_RATE: positiveInt(2_000),
    /** A replay whose runner did not heartbeat for this long is taken over by another replica. */
    ARCHIVER_REPLAY_LEASE_MS: positiveInt(30_000),
    /** A deletion whose replica stopped heartbeating for this long is taken over by another one. */
    ARCHIVER_DELETION_LEASE_MS: positiveInt(30_000),
  })
  .superRefine(checkKafkaEnv);

export type ArchiverConfig = z.infer<typeof archiverEnv>;
