import { kvOf, type ConsulClient, type KvEntry } from './kv';

/** Lifecycle states of a JobDB in Consul KV (DESIGN.md "JobDB lifecycle"). */
export const JOBDB_STATES = ['active', 'draining', 'drained'] as const;
export type JobDbState = (typeof JOBDB_STATES)[number];

/** Value of `<prefix>jobdbs/<id>`. Extra fields written by jobdb-manager are kept. */
export interface JobDbRecord {
  state: JobDbState;
  /** Where the database lives: its name on the server of the reader's MYSQL_URL (credentials never go to KV). */
  dsnRef: string;
  createdAt: string;
  [extra: string]: unknown;
}

/** Validates a record read from KV (this lib has no zod: a few checks suffice). */
export function parseJobDbRecord(text: string): JobDbRecord {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
  const v = value as Record<string, unknown>;
  if (!JOBDB_STATES.includes(v.state as JobDbState)) throw new Error(`state: must be one of ${JOBDB_STATES.join(', ')}`);
  if (typeof v.dsnRef !== 'string' || v.dsnRef === '') throw new Error('dsnRef: must be a non-empty string');
  if (typeof v.createdAt !== 'string' || v.createdAt === '') throw new Error('createdAt: must be a non-empty string');
  return v as JobDbRecord;
}

export const JOBDB_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function jobDbKey(prefix: string, id: string): string {
  return `${prefix}jobdbs/${id}`;
}

export function jobDbLockKey(prefix: string, id: string): string {
  return `${prefix}jobdbs/${id}/lock`;
}

export interface JobDbEntry extends JobDbRecord {
  id: string;
  /** ModifyIndex of the record key (for check-and-set). */
  modifyIndex: number;
  /** Session holding `<id>/lock`, if any. */
  holder?: string;
}

/**
 * Parses a recursive read of `<prefix>jobdbs/` into JobDB entries. Malformed records are
 * reported through `onInvalid` and skipped, so one bad key never hides the others.
 */
export function parseJobDbEntries(
  prefix: string,
  items: readonly KvEntry[],
  onInvalid?: (key: string, reason: string) => void,
): JobDbEntry[] {
  const base = `${prefix}jobdbs/`;
  const records = new Map<string, JobDbEntry>();
  const holders = new Map<string, string>();
  for (const item of items) {
    if (!item.Key.startsWith(base)) continue;
    const rest = item.Key.slice(base.length);
    const parts = rest.split('/');
    if (parts.length === 2 && parts[1] === 'lock') {
      if (item.Session) holders.set(parts[0], item.Session);
      continue;
    }
    if (parts.length !== 1 || !JOBDB_ID.test(parts[0])) continue;
    try {
      const record = parseJobDbRecord(item.Value ?? '');
      records.set(parts[0], { ...record, id: parts[0], modifyIndex: item.ModifyIndex });
    } catch (error) {
      onInvalid?.(item.Key, error instanceof Error ? error.message.slice(0, 200) : String(error));
    }
  }
  for (const [id, session] of holders) {
    const entry = records.get(id);
    if (entry) entry.holder = session;
  }
  return [...records.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

export async function listJobDbs(consul: ConsulClient, prefix: string): Promise<JobDbEntry[]> {
  const result = await kvOf(consul).get({ key: `${prefix}jobdbs/`, recurse: true });
  const items = result === undefined ? [] : Array.isArray(result) ? result : [result];
  return parseJobDbEntries(prefix, items);
}

export async function registerJobDb(consul: ConsulClient, prefix: string, id: string, record: JobDbRecord): Promise<void> {
  // cas=0: create only, so two managers never register the same id twice.
  const ok = await kvOf(consul).set({ key: jobDbKey(prefix, id), value: JSON.stringify(record), cas: 0 });
  if (ok !== true) throw new Error(`JobDB ${id} is already registered in Consul`);
}

/**
 * Moves a JobDB to `state` with check-and-set on the record (never on the lock key, whose
 * LockIndex a plain PUT would reset). Returns false when the record changed meanwhile.
 */
export async function setJobDbState(consul: ConsulClient, prefix: string, entry: JobDbEntry, state: JobDbState): Promise<boolean> {
  const { id, modifyIndex, holder: _holder, ...record } = entry;
  const ok = await kvOf(consul).set({
    key: jobDbKey(prefix, id),
    value: JSON.stringify({ ...record, state }),
    cas: modifyIndex,
  });
  return ok === true;
}

export async function unregisterJobDb(consul: ConsulClient, prefix: string, id: string): Promise<void> {
  const kv = kvOf(consul);
  await kv.del({ key: jobDbLockKey(prefix, id) });
  await kv.del({ key: jobDbKey(prefix, id) });
}
