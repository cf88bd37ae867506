import {
  jobDbRecordOf,
  parseJobDbEntries,
  type ConsulClient,
  type ConsulKeys,
  type JobDbEntry,
  type JobDbRecord,
  type JobDbState,
} from '@cdp/consul';

/** The JobDB records and lock holders under `keys.jobDbs`, sorted by id; malformed records are skipped. */
export async function listJobDbs(consul: ConsulClient, keys: ConsulKeys): Promise<JobDbEntry[]> {
  return parseJobDbEntries(keys, await consul.kv.list(keys.jobDbs));
}

export async function registerJobDb(consul: ConsulClient, keys: ConsulKeys, id: string, record: JobDbRecord): Promise<void> {
  // cas=0: create only, so two managers never register the same id twice.
  if (!(await consul.kv.set(keys.jobDb(id), JSON.stringify(record), { cas: 0 })))
    throw new Error(`JobDB ${id} is already registered in Consul`);
}

/**
 * Moves a JobDB to `state` with check-and-set on the record (never on the lock key, whose
 * LockIndex a plain PUT would reset). Returns false when the record changed meanwhile.
 */
export async function setJobDbState(consul: ConsulClient, keys: ConsulKeys, entry: JobDbEntry, state: JobDbState): Promise<boolean> {
  return consul.kv.set(keys.jobDb(entry.id), JSON.stringify({ ...jobDbRecordOf(entry), state }), { cas: entry.modifyIndex });
}

export async function unregisterJobDb(consul: ConsulClient, keys: ConsulKeys, id: string): Promise<void> {
  await consul.kv.delete(keys.jobDbLock(id));
  await consul.kv.delete(keys.jobDb(id));
}
