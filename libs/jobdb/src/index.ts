export { CREATE_TABLES, FINAL_STATES, JOB_STATES, KNOWN_SCHEMA_VERSIONS, SCHEMA_VERSION, TABLES, isFinal, type JobState } from './schema';
export {
  FencedError,
  INTERRUPTED_ERROR,
  JobDb,
  StaleLeaseError,
  type LeaseRequest,
  idempotencyHash,
  newJobId,
  type IdempotencyKey,
  type InsertResult,
  type JobInsertStatus,
  type JobDbOptions,
  type NewJob,
  type JobContentRow,
  type OpenJob,
  type OpenJobHead,
  type StoredJob,
  type Transition,
} from './jobdb';
export { listJobDbs, registerJobDb, setJobDbState, unregisterJobDb } from './registry';
export {
  UnknownSchemaVersionError,
  checkSchemaVersion,
  createJobDbDatabase,
  dropJobDb,
  dropJobDbDatabase,
  provisionJobDb,
  type ProvisionOptions,
} from './provision';
export {
  CONTROL_TABLES,
  STATUS_CODE_TABLES,
  STATS_LATENCY_BUCKETS_MS,
  appendDeliveryStats,
  CONTROL_MIGRATIONS,
  CONTROL_SCHEMA_VERSION,
  controlSchemaVersion,
  migrateControlDatabase,
  pruneDeliveryStats,
  recordRegulationDeletion,
  REGULATION_DELETION_TABLES,
  waitForControlSchema,
  type RegulationDeletionRow,
  type DeliveryStatsRow,
  type PruneOptions,
  type PruneResult,
} from './control';
export { countOpenJobsIn, jobDbUsage, listDatabases, oldestOpenJobReceivedAt, type JobDbUsage } from './inspect';
