import { jobDbRecordOf, parseJobDbEntries, type ConsulKeys, type JobDbEntry, type JobDbRecord, type JobDbState } from '@cdp/consul';
import { kvOf, type ConsulClient } from './kv';

/** The JobDB records and lock holders under `keys.jobDbs`, sorted by id; malformed records are skipped. */
export async function listJobDbs(consul: ConsulClient, keys: ConsulKeys): Promise<JobDbEntry[]> {
  const result = await kvOf(consul).get({ key: keys.jobDbs, recurse: true });
  const items = result === undefined ? [] : Array.isArray(result) ? result : [result];
  return parseJobDbEntries(keys, items);
}

export async function registerJobDb(consul: ConsulClient, keys: ConsulKeys, id: string, record: JobDbRecord): Promise<void> {
  // cas=0: create only, so two managers never register the same id twice.
  const ok = await kvOf(consul).set({ key: keys.jobDb(id), value: JSON.stringify(record), cas: 0 });
  if (ok !== true) throw new Error(`JobDB ${id} is already registered in Consul`);
}

/**
 * Moves a JobDB to `state` with check-and-set on the record (never on the lock key, whose
 * LockIndex a plain PUT would reset). Returns false when the record changed meanwhile.
 */
export async function setJobDbState(consul: ConsulClient, keys: ConsulKeys, entry: JobDbEntry, state: JobDbState): Promise<boolean> {
  const ok = await kvOf(consul).set({
    key: keys.jobDb(entry.id),
    value: JSON.stringify({ ...jobDbRecordOf(entry), state }),
    cas: entry.modifyIndex,
  });
  return ok === true;
}

export async function unregisterJobDb(consul: ConsulClient, keys: ConsulKeys, id: string): Promise<void> {
  const kv = kvOf(consul);
  await kv.del({ key: keys.jobDbLock(id) });
  await kv.del({ key: keys.jobDb(id) });
}
