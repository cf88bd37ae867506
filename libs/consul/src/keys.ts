/**
 * The Consul key layout (DESIGN.md "Consul layout", docs/contracts.md): every key the
 * pipeline reads or writes is built and recognised here, under a configurable prefix.
 */

export const DEFAULT_CONSUL_PREFIX = 'cdp/';

/** A key prefix: empty, or segments each ending with '/' (no leading slash: Consul keys have none). */
export const CONSUL_PREFIX = /^([A-Za-z0-9_-]+\/)*$/;

/** A JobDB or destination id: one path segment, so it can never reach another key. */
export const KEY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The leader-lock name of a service (`jobdb-manager`). */
const SERVICE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** What a key under the prefix is, as `ConsulKeys.parse` recognises it. */
export type ParsedKey =
  | { kind: 'jobdb'; id: string }
  | { kind: 'jobdb-lock'; id: string }
  | { kind: 'destination-control'; id: string }
  | { kind: 'leader'; service: string };

function checkId(what: string, id: string): string {
  if (!KEY_ID.test(id)) throw new Error(`invalid ${what} id ${JSON.stringify(id)} (want ${KEY_ID.source})`);
  return id;
}

/**
 * Key builders for one prefix. The prefix is empty or ends with '/' and does not start with
 * one (Consul keys have no leading slash); ids are checked, so a key is never ambiguous.
 */
export class ConsulKeys {
  /** Folder of the JobDB records and their locks (list or watch it recursively). */
  readonly jobDbs: string;
  /** Folder of the destination controls. */
  readonly destinations: string;
  /** Folder of the leader locks. */
  readonly leaders: string;

  constructor(readonly prefix: string = DEFAULT_CONSUL_PREFIX) {
    if (!CONSUL_PREFIX.test(prefix)) {
      throw new Error(`invalid Consul prefix ${JSON.stringify(prefix)} (want segments of [A-Za-z0-9_-] each ending with '/', e.g. "cdp/")`);
    }
    this.jobDbs = `${prefix}jobdbs/`;
    this.destinations = `${prefix}destinations/`;
    this.leaders = `${prefix}leader/`;
  }

  /** `<prefix>jobdbs/<id>`: the JobDB record (JSON, `jobDbRecordSchema`). */
  jobDb(id: string): string {
    return `${this.jobDbs}${checkId('JobDB', id)}`;
  }

  /** `<prefix>jobdbs/<id>/lock`: held by the director session that may write to the JobDB. */
  jobDbLock(id: string): string {
    return `${this.jobDb(id)}/lock`;
  }

  /** `<prefix>destinations/<id>/control`: operator controls (`destinationControlSchema`). */
  destinationControl(id: string): string {
    return `${this.destinations}${checkId('destination', id)}/control`;
  }

  /** `<prefix>leader/<service>`: the leader lock of a service (e.g. `jobdb-manager`). */
  leader(service: string): string {
    if (!SERVICE_NAME.test(service)) throw new Error(`invalid service name ${JSON.stringify(service)} for a leader key`);
    return `${this.leaders}${service}`;
  }

  /** Which of the keys above `key` is; undefined for anything else (outside the prefix, other shapes, bad ids). */
  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.prefix)) return undefined;
    const parts = key.slice(this.prefix.length).split('/');
    const [folder, name, leaf] = parts;
    if (folder === 'jobdbs' && KEY_ID.test(name ?? '')) {
      if (parts.length === 2) return { kind: 'jobdb', id: name };
      if (parts.length === 3 && leaf === 'lock') return { kind: 'jobdb-lock', id: name };
    }
    if (folder === 'destinations' && parts.length === 3 && leaf === 'control' && KEY_ID.test(name ?? '')) {
      return { kind: 'destination-control', id: name };
    }
    if (folder === 'leader' && parts.length === 2 && SERVICE_NAME.test(name ?? '')) return { kind: 'leader', service: name };
    return undefined;
  }
}

/** Sessions of directors are named `director:<pod>`; a director counts the live ones by this prefix. */
export const DIRECTOR_SESSION_PREFIX = 'director:';

export function directorSessionName(pod: string): string {
  if (pod === '') throw new Error('a director session needs a pod name');
  return `${DIRECTOR_SESSION_PREFIX}${pod}`;
}

export function isDirectorSession(name: string): boolean {
  return name.startsWith(DIRECTOR_SESSION_PREFIX) && name.length > DIRECTOR_SESSION_PREFIX.length;
}
