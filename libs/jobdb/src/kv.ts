import type { KvEntry } from '@cdp/consul';
import type { createConsulClient } from '@cdp/consul-lock';

/** The consul client the services create (`createConsulClient`). */
export type ConsulClient = ReturnType<typeof createConsulClient>;

type Options = Record<string, unknown>;

/** The loosely typed KV surface used here; the client's bundled typings omit `recurse` results and `cas`. */
export interface KvApi {
  get(options: Options): Promise<KvEntry | KvEntry[] | undefined>;
  set(options: Options): Promise<boolean | undefined>;
  del(options: Options): Promise<unknown>;
}

export const kvOf = (consul: ConsulClient): KvApi => (consul as unknown as { kv: KvApi }).kv;
