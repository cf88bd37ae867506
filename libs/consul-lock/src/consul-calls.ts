import type { EventEmitter } from 'node:events';
import type Consul from 'consul';

/** A KV entry as the consul client returns it (Value already decoded to a string). */
export interface KvItem {
  LockIndex: number;
  Key: string;
  Flags: number;
  Value: string | null;
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

type Options = Record<string, unknown>;

export interface WatchLike extends EventEmitter {
  end(): void;
}

/**
 * The part of the `consul` client this lib uses. Its bundled typings omit options the
 * client does support per request (`timeout`, `consistent`, `ctx`) and fields Consul
 * returns (`Session`), so calls go through this one loosely typed view.
 */
export interface ConsulApi {
  session: {
    create(options: Options): Promise<{ ID: string }>;
    renew(options: Options): Promise<unknown>;
    destroy(options: Options): Promise<unknown>;
    info(options: Options): Promise<unknown>;
  };
  kv: {
    get(options: Options): Promise<KvItem | undefined>;
    set(options: Options): Promise<boolean | undefined>;
  };
  watch(options: { method: unknown; options: Options; backoffFactor?: number; backoffMax?: number }): WatchLike;
}

export const api = (consul: Consul): ConsulApi => consul as unknown as ConsulApi;

/** HTTP status of a failed consul client call, if the server answered. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}
