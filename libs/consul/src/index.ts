export {
  CONSUL_PREFIX,
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
export { consulBaseUrl, parseConsulAddr, type ConsulAddress } from './address';
export { durationToMs } from './duration';
export {
  ConsulClient,
  ConsulError,
  createConsulClient,
  type BlockingQuery,
  type ConsulClientOptions,
  type Indexed,
  type KvDeleteOptions,
  type KvSetOptions,
  type ReadOptions,
  type RequestOptions,
  type SessionBehavior,
  type SessionCreate,
  type SessionInfo,
} from './client';
export { ConsulWatch, type ConsulWatchEvents, type WatchOptions } from './watch';
