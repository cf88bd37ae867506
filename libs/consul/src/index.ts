export {
  ConsulKeys,
  DEFAULT_CONSUL_PREFIX,
  DIRECTOR_SESSION_PREFIX,
  KEY_ID,
  directorSessionName,
  isDirectorSession,
  type ParsedKey,
} from './keys';
export {
  JOBDB_STATES,
  destinationControlSchema,
  jobDbRecordSchema,
  lockHolderSchema,
  parseKvJson,
  type DestinationControl,
  type JobDbRecord,
  type JobDbState,
  type LockHolder,
} from './values';
export { jobDbRecordOf, parseDestinationControls, parseJobDbEntries, type JobDbEntry, type OnInvalidValue } from './entries';
export type { KvEntry } from './kv-entry';
