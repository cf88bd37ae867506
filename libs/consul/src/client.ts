import { Agent, request } from 'undici';
import { z } from 'zod';
import { consulBaseUrl, parseConsulAddr } from './address';
import { durationToMs } from './duration';
import type { KvEntry } from './kv-entry';
import { ConsulWatch, type WatchOptions } from './watch';

export interface ConsulClientOptions {
  /** Timeout of each request that is not a blocking query; default 10 s. */
  requestTimeoutMs?: number;
  /** ACL token, sent as `X-Consul-Token`. */
  token?: string;
}

/** Per-request options of a write. */
export interface RequestOptions {
  /** Overrides the client's request timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Per-request options of a read; `index` makes it a blocking query. */
export interface ReadOptions extends RequestOptions {
  /** Answer only once the data's index is above this one (or `wait` has passed). */
  index?: number;
  /** Longest a blocking query waits (Go duration, Consul's default 5m). */
  wait?: string;
  /** Read through the leader with a quorum check (`?consistent`). */
  consistent?: boolean;
}

/** A read's value and Consul's `X-Consul-Index` for it (what a blocking query passes back as `index`). */
export interface Indexed<T> {
  index: number;
  value: T;
}

/** A read that can block: the unit `ConsulWatch` repeats. */
export type BlockingQuery<T> = (options: ReadOptions) => Promise<Indexed<T>>;

/** How Consul treats a session's keys when the session is invalidated. */
export type SessionBehavior = 'release' | 'delete';

export interface SessionCreate {
  name: string;
  /** Go duration; the session is invalidated TTL..2xTTL after its last renewal. */
  ttl: string;
  behavior: SessionBehavior;
  /** Go duration; omitted: Consul's default (15s). */
  lockDelay?: string;
}

const sessionInfoSchema = z.looseObject({
  ID: z.string(),
  Name: z.string(),
  Node: z.string(),
  /** Nanoseconds. */
  LockDelay: z.number(),
  Behavior: z.string(),
  TTL: z.string(),
  CreateIndex: z.number(),
  ModifyIndex: z.number(),
});
export type SessionInfo = z.infer<typeof sessionInfoSchema>;

const kvEntrySchema = z
  .object({
    LockIndex: z.number(),
    Key: z.string(),
    Flags: z.number(),
    Value: z.string().nullable(),
    Session: z.string().optional(),
    CreateIndex: z.number(),
    ModifyIndex: z.number(),
  })
  .transform((e): KvEntry => ({
    ...e,
    // Consul sends values base64-encoded; an empty value is null.
    Value: e.Value === null ? null : Buffer.from(e.Value, 'base64').toString('utf8'),
  }));
const kvEntriesSchema = z.array(kvEntrySchema);
const sessionsSchema = z.array(sessionInfoSchema);
const sessionCreatedSchema = z.object({ ID: z.string().min(1) });
const booleanSchema = z.boolean();

/** A Consul answer other than the expected one, or a request that failed or timed out. */
export class ConsulError extends Error {
  constructor(
    message: string,
    /** HTTP status when Consul answered. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConsulError';
  }
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

interface Answer {
  status: number;
  index: number;
  text: string;
}

/**
 * A typed client of the Consul HTTP API parts the pipeline uses: KV (with check-and-set and
 * session locks), sessions, and blocking queries with watches. Every answer is validated, so
 * a caller sees Consul's fields with their real types or a ConsulError. `close()` frees its
 * keep-alive sockets.
 */
export class ConsulClient {
  readonly baseUrl: string;
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  private readonly requestTimeoutMs: number;
  private readonly token: string | undefined;

  /** `addr` in CONSUL_HTTP_ADDR form (`host:port`, `http(s)://host:port`, bare host). */
  constructor(addr: string, options: ConsulClientOptions = {}) {
    this.baseUrl = consulBaseUrl(parseConsulAddr(addr));
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.token = options.token;
  }

  readonly kv = {
    /** The entry at `key`, undefined when there is none. */
    get: async (key: string, options: ReadOptions = {}): Promise<KvEntry | undefined> => (await this.kv.entry(key)(options)).value,
    /** Every entry under `prefix` (recursive), sorted by key; empty when there is none. */
    list: async (prefix: string, options: ReadOptions = {}): Promise<KvEntry[]> => (await this.kv.prefix(prefix)(options)).value,
    /** The blocking query of one key. */
    entry:
      (key: string): BlockingQuery<KvEntry | undefined> =>
      async (options) => {
        const answer = await this.read(`/v1/kv/${encodeKey(key)}`, new URLSearchParams(), options);
        return { index: answer.index, value: answer.status === 404 ? undefined : parse(kvEntriesSchema, answer, 'kv entry')[0] };
      },
    /** The blocking query of a folder (`?recurse`). */
    prefix:
      (prefix: string): BlockingQuery<KvEntry[]> =>
      async (options) => {
        const answer = await this.read(`/v1/kv/${encodeKey(prefix)}`, new URLSearchParams({ recurse: '' }), options);
        return { index: answer.index, value: answer.status === 404 ? [] : parse(kvEntriesSchema, answer, 'kv entries') };
      },
    /**
     * Writes `value`. With `cas`, only if the key's ModifyIndex is still that (0: only if absent);
     * with `acquire`/`release`, takes or gives back the key's lock for that session. Resolves
     * whether Consul applied it.
     */
    set: async (key: string, value: string | Buffer, options: KvSetOptions = {}): Promise<boolean> => {
      const query = new URLSearchParams();
      if (options.cas !== undefined) query.set('cas', String(options.cas));
      if (options.acquire !== undefined) query.set('acquire', options.acquire);
      if (options.release !== undefined) query.set('release', options.release);
      if (options.flags !== undefined) query.set('flags', String(options.flags));
      const answer = await this.write('PUT', `/v1/kv/${encodeKey(key)}`, query, value, options);
      return parse(booleanSchema, answer, 'kv set');
    },
    /** Deletes `key` (with `recurse`, everything under it; with `cas`, only at that ModifyIndex). */
    delete: async (key: string, options: KvDeleteOptions = {}): Promise<boolean> => {
      const query = new URLSearchParams();
      if (options.recurse) query.set('recurse', '');
      if (options.cas !== undefined) query.set('cas', String(options.cas));
      const answer = await this.write('DELETE', `/v1/kv/${encodeKey(key)}`, query, undefined, options);
      return parse(booleanSchema, answer, 'kv delete');
    },
  };

  readonly session = {
    /** Creates a session and resolves its id. */
    create: async (session: SessionCreate, options: RequestOptions = {}): Promise<string> => {
      const body: Record<string, string> = { Name: session.name, TTL: session.ttl, Behavior: session.behavior };
      if (session.lockDelay !== undefined) body.LockDelay = session.lockDelay;
      const answer = await this.write('PUT', '/v1/session/create', new URLSearchParams(), JSON.stringify(body), options);
      return parse(sessionCreatedSchema, answer, 'session create').ID;
    },
    /** Resets the session's TTL timer; false when Consul no longer has the session (it was invalidated). */
    renew: async (id: string, options: RequestOptions = {}): Promise<boolean> => {
      const answer = await this.write(
        'PUT',
        `/v1/session/renew/${encodeURIComponent(id)}`,
        new URLSearchParams(),
        undefined,
        options,
        [404],
      );
      if (answer.status === 404) return false;
      parse(sessionsSchema, answer, 'session renew');
      return true;
    },
    /** Invalidates the session (its held keys are released or deleted per its behavior). */
    destroy: async (id: string, options: RequestOptions = {}): Promise<void> => {
      const answer = await this.write('PUT', `/v1/session/destroy/${encodeURIComponent(id)}`, new URLSearchParams(), undefined, options);
      parse(booleanSchema, answer, 'session destroy');
    },
    /** The session, undefined when Consul does not have it. */
    info: async (id: string, options: ReadOptions = {}): Promise<SessionInfo | undefined> => (await this.session.one(id)(options)).value,
    /** Every live session of the datacenter. */
    list: async (options: ReadOptions = {}): Promise<SessionInfo[]> => (await this.session.all()(options)).value,
    /** The blocking query of one session. */
    one:
      (id: string): BlockingQuery<SessionInfo | undefined> =>
      async (options) => {
        const answer = await this.read(`/v1/session/info/${encodeURIComponent(id)}`, new URLSearchParams(), options);
        return { index: answer.index, value: parse(sessionsSchema, answer, 'session info')[0] };
      },
    /** The blocking query of all sessions. */
    all: (): BlockingQuery<SessionInfo[]> => async (options) => {
      const answer = await this.read('/v1/session/list', new URLSearchParams(), options);
      return { index: answer.index, value: parse(sessionsSchema, answer, 'session list') };
    },
  };

  /** Repeats `query` as blocking queries and emits each new value (see ConsulWatch). */
  watch<T>(query: BlockingQuery<T>, options: WatchOptions = {}): ConsulWatch<T> {
    return new ConsulWatch(query, options);
  }

  /** Frees the keep-alive sockets; requests in flight fail. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  private read(path: string, query: URLSearchParams, options: ReadOptions): Promise<Answer> {
    if (options.consistent) query.set('consistent', '');
    let timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    if (options.index !== undefined) {
      query.set('index', String(options.index));
      if (options.wait !== undefined) query.set('wait', options.wait);
      // Consul answers a blocking query after `wait` plus up to wait/16 of jitter.
      const waitMs = options.wait === undefined ? 5 * 60_000 : durationToMs(options.wait);
      if (options.timeoutMs === undefined) timeoutMs = Math.ceil(waitMs + Math.max(waitMs / 10, 500) + this.requestTimeoutMs);
    }
    // A read that finds nothing is a 404 that still carries an index.
    return this.call('GET', path, query, undefined, timeoutMs, options.signal, [404]);
  }

  private write(
    method: 'PUT' | 'DELETE',
    path: string,
    query: URLSearchParams,
    body: string | Buffer | undefined,
    options: RequestOptions,
    allowed: number[] = [],
  ): Promise<Answer> {
    return this.call(method, path, query, body, options.timeoutMs ?? this.requestTimeoutMs, options.signal, allowed);
  }

  private async call(
    method: 'GET' | 'PUT' | 'DELETE',
    path: string,
    query: URLSearchParams,
    body: string | Buffer | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    allowed: number[],
  ): Promise<Answer> {
    const search = query.toString();
    const what = `${method} ${path}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = {};
    if (this.token !== undefined) headers['x-consul-token'] = this.token;
    try {
      const res = await request(`${this.baseUrl}${path}${search === '' ? '' : `?${search}`}`, {
        method,
        body,
        headers,
        dispatcher: this.agent,
        signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
      });
      const text = await res.body.text();
      if ((res.statusCode < 200 || res.statusCode > 299) && !allowed.includes(res.statusCode)) {
        throw new ConsulError(`consul ${what}: HTTP ${res.statusCode}: ${text.trim().slice(0, 200)}`, res.statusCode);
      }
      const index = Number(res.headers['x-consul-index'] ?? 0);
      return { status: res.statusCode, index: Number.isSafeInteger(index) ? index : 0, text };
    } catch (error) {
      if (error instanceof ConsulError) throw error;
      if (timeout.aborted && !signal?.aborted)
        throw new ConsulError(`consul ${what}: no answer within ${timeoutMs} ms`, undefined, { cause: error });
      throw new ConsulError(`consul ${what}: ${error instanceof Error ? error.message : String(error)}`, undefined, { cause: error });
    }
  }
}

export interface KvSetOptions extends RequestOptions {
  /** Check-and-set: write only if the key's ModifyIndex is this (0: only if the key does not exist). */
  cas?: number;
  /** Take the key's lock for this session. */
  acquire?: string;
  /** Give back the key's lock held by this session. */
  release?: string;
  flags?: number;
}

export interface KvDeleteOptions extends RequestOptions {
  recurse?: boolean;
  cas?: number;
}

/** Keys may hold any character; each segment is escaped, the slashes stay. */
function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function parse<S extends z.ZodType>(schema: S, answer: Answer, what: string): z.infer<S> {
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new ConsulError(`consul ${what}: answer is not JSON: ${answer.text.slice(0, 100)}`, answer.status);
  }
  const result = schema.safeParse(json);
  if (!result.success)
    throw new ConsulError(`consul ${what}: unexpected answer: ${result.error.issues[0]?.message ?? 'invalid'}`, answer.status);
  return result.data;
}

/** A client for a CONSUL_HTTP_ADDR-style address. Call `close()` to free its sockets. */
export function createConsulClient(addr: string, options?: ConsulClientOptions): ConsulClient {
  return new ConsulClient(addr, options);
}
