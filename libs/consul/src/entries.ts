import type { ConsulKeys } from './keys';
import type { KvEntry } from './kv-entry';
import { destinationControlSchema, jobDbRecordSchema, parseKvJson, type DestinationControl, type JobDbRecord } from './values';

/** Told about a key whose value does not match its schema; the key is skipped. */
export type OnInvalidValue = (key: string, reason: string) => void;

const reasonOf = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 200);

/** A JobDB as read from `<prefix>jobdbs/`: its record, the record's ModifyIndex and its lock's holder. */
export type JobDbEntry = JobDbRecord & {
  id: string;
  /** ModifyIndex of the record key (for check-and-set). */
  modifyIndex: number;
  /** Session holding `<id>/lock`, if any. */
  holder?: string;
};

/**
 * Parses a recursive read of `keys.jobDbs` into JobDB entries sorted by id. Malformed records
 * are reported through `onInvalid` and skipped, so one bad key never hides the others.
 */
export function parseJobDbEntries(keys: ConsulKeys, items: readonly KvEntry[], onInvalid?: OnInvalidValue): JobDbEntry[] {
  const records = new Map<string, JobDbEntry>();
  const holders = new Map<string, string>();
  for (const item of items) {
    const key = keys.parse(item.Key);
    if (key?.kind === 'jobdb-lock') {
      if (item.Session) holders.set(key.id, item.Session);
    } else if (key?.kind === 'jobdb') {
      try {
        records.set(key.id, { ...parseKvJson(jobDbRecordSchema, item.Value), id: key.id, modifyIndex: item.ModifyIndex });
      } catch (error) {
        onInvalid?.(item.Key, reasonOf(error));
      }
    }
  }
  for (const [id, session] of holders) {
    const entry = records.get(id);
    if (entry) entry.holder = session;
  }
  return [...records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The record part of an entry, as written back to `keys.jobDb(id)` (extra fields kept). */
export function jobDbRecordOf(entry: JobDbEntry): JobDbRecord {
  const { id: _id, modifyIndex: _modifyIndex, holder: _holder, ...record } = entry;
  return record;
}

/**
 * Parses a recursive read of `keys.destinations` into controls by destination id. An empty
 * value means no control; bad values are reported through `onInvalid` and skipped.
 */
export function parseDestinationControls(
  keys: ConsulKeys,
  items: readonly KvEntry[],
  onInvalid?: OnInvalidValue,
): Map<string, DestinationControl> {
  const out = new Map<string, DestinationControl>();
  for (const item of items) {
    const key = keys.parse(item.Key);
    if (key?.kind !== 'destination-control') continue;
    try {
      out.set(key.id, parseKvJson(destinationControlSchema, item.Value ?? '{}'));
    } catch (error) {
      onInvalid?.(item.Key, reasonOf(error));
    }
  }
  return out;
}
