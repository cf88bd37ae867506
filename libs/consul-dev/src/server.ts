import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, errorFields, type Logger } from '@cdp/log';
import { GoDurationError, nanosToMs, parseGoDuration } from './duration';
import { badRequest, ConsulHttpError } from './errors';
import { ConsulStore, type KvEntry, type KvPutOp, type ServiceCheck, type Session, type SessionCreateRequest, type Table } from './store';

export interface ConsulDevServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Consul's `session_ttl_min`; default 10 000 ms. */
  minTtlMs?: number;
  /** Sessions expire at TTL x this; Consul uses 2 (default). Tests may use 1. */
  ttlMultiplier?: number;
  /** LockDelay of sessions that do not set one; Consul's is 15 s (default). */
  defaultLockDelayMs?: number;
  /** Name of the single node sessions attach to; default `cdp-consul-dev`. */
  nodeName?: string;
  /** Datacenter name; requests for any other `dc` fail like an unreachable one. */
  datacenter?: string;
  /**
   * ACLs on with this one token allowed everything: a request without it (`X-Consul-Token`, or
   * `Authorization: Bearer`) gets Consul's 403 (the anonymous token may do nothing; an unknown
   * token is "ACL not found"). Unset: ACLs off, as Consul's dev agent.
   */
  aclToken?: string;
  logger?: Logger;
}

export interface ConsulDevServer {
  /** `http://host:port`, no trailing slash. */
  url: string;
  port: number;
  host: string;
  close(): Promise<void>;
}

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
/** Consul's kv_max_value_size default. */
const KV_MAX_VALUE_BYTES = 512 * 1024;
/** Consul caps session/create and other JSON bodies far above what clients send. */
const MAX_JSON_BODY_BYTES = 1024 * 1024;

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  /** Path remainder after the route prefix, percent-decoded. */
  rest: string;
  signal: AbortSignal;
}

type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route {
  path: string;
  /** True when `path` is a prefix (ends with '/'), like Go's ServeMux. */
  prefix: boolean;
  methods: string[];
  handler: Handler;
}

/** Starts a Consul-HTTP-API-compatible server for tests and the local stack. */
export async function startConsulDevServer(options: ConsulDevServerOptions = {}): Promise<ConsulDevServer> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger ?? createLogger({ name: 'consul-dev' });
  const minTtlMs = options.minTtlMs ?? 10_000;
  const ttlMultiplier = options.ttlMultiplier ?? 2;
  const defaultLockDelayMs = options.defaultLockDelayMs ?? 15_000;
  if (!(minTtlMs > 0)) throw new Error('minTtlMs must be > 0');
  if (!(ttlMultiplier > 0)) throw new Error('ttlMultiplier must be > 0');
  if (!(defaultLockDelayMs >= 0)) throw new Error('defaultLockDelayMs must be >= 0');

  const store = new ConsulStore({
    nodeName: options.nodeName ?? 'cdp-consul-dev',
    minTtlMs,
    ttlMultiplier,
    defaultLockDelayMs,
    logger,
  });
  const datacenter = options.datacenter ?? 'dc1';
  const routes = buildRoutes(store, datacenter, host);

  const server = http.createServer((req, res) => {
    void dispatch(routes, req, res, logger, options.aclToken);
  });
  // Consul (Go) never closes idle keep-alive connections; Node's 5 s default races with
  // clients that reuse pooled sockets (the consul client does) and shows up as ECONNRESET.
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  logger.debug({ host, port, minTtlMs, ttlMultiplier, defaultLockDelayMs }, 'consul-dev started');

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    host,
    close() {
      closing ??= new Promise<void>((resolve) => {
        // Wake blocked queries first so they answer instead of hanging the close.
        store.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** The token of a request as Consul reads it: `X-Consul-Token`, else `Authorization: Bearer`. */
function requestToken(req: IncomingMessage): string | undefined {
  const header = req.headers['x-consul-token'];
  if (typeof header === 'string' && header !== '') return header;
  return /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
}

async function dispatch(routes: Route[], req: IncomingMessage, res: ServerResponse, logger: Logger, aclToken?: string): Promise<void> {
  const aborter = new AbortController();
  res.on('close', () => aborter.abort());
  try {
    if (aclToken !== undefined) {
      const token = requestToken(req);
      if (token === undefined) throw new ConsulHttpError(403, 'Permission denied: anonymous token lacks permission');
      if (token !== aclToken) throw new ConsulHttpError(403, 'ACL not found');
    }
    const url = new URL(req.url ?? '/', 'http://consul.invalid');
    const route = routes.find((r) => (r.prefix ? url.pathname.startsWith(r.path) : url.pathname === r.path));
    if (!route) {
      sendText(res, 404, '404 page not found\n');
      return;
    }
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(200, { Allow: [...route.methods, 'OPTIONS'].join(',') });
      res.end();
      return;
    }
    if (!route.methods.includes(method)) {
      throw new ConsulHttpError(405, `method ${method} not allowed`, { Allow: route.methods.join(',') });
    }
    let rest: string;
    try {
      rest = decodeURIComponent(url.pathname.slice(route.path.length));
    } catch {
      throw badRequest('Invalid URL path encoding');
    }
    await route.handler({ req, res, query: url.searchParams, rest, signal: aborter.signal });
  } catch (error) {
    if (res.headersSent || res.destroyed) return;
    if (error instanceof ConsulHttpError) {
      sendText(res, error.status, error.message, error.headers);
    } else {
      logger.error({ ...errorFields(error), url: req.url }, 'consul-dev handler failed');
      sendText(res, 500, error instanceof Error ? error.message : String(error));
    }
  }
}

function buildRoutes(store: ConsulStore, datacenter: string, host: string): Route[] {
  const checkDc = (query: URLSearchParams) => {
    const dc = query.get('dc');
    if (dc && dc !== datacenter) throw new ConsulHttpError(500, 'No path to datacenter');
  };
  const route = (path: string, methods: string[], handler: Handler): Route => ({
    path,
    prefix: path.endsWith('/'),
    methods,
    handler: (ctx) => {
      checkDc(ctx.query);
      return handler(ctx);
    },
  });

  return [
    route('/v1/kv/', ['GET', 'PUT', 'DELETE'], (ctx) => kvEndpoint(store, ctx)),
    route('/v1/session/create', ['PUT'], async (ctx) => {
      const body = await readBody(ctx.req, MAX_JSON_BODY_BYTES);
      const session = store.createSession(decodeSessionCreate(body));
      sendJson(ctx, 200, JSON.stringify({ ID: session.id }));
    }),
    route('/v1/session/destroy/', ['PUT'], (ctx) => {
      if (ctx.rest === '') throw badRequest('Missing session');
      store.destroySession(ctx.rest);
      sendJson(ctx, 200, 'true');
    }),
    route('/v1/session/renew/', ['PUT'], (ctx) => {
      const id = ctx.rest;
      if (id === '') throw badRequest('Missing session');
      const session = store.renewSession(id);
      if (!session) throw new ConsulHttpError(404, `Session id '${id}' not found`);
      sendJson(ctx, 200, JSON.stringify([sessionJson(session)]));
    }),
    route('/v1/session/info/', ['GET'], (ctx) => {
      if (ctx.rest === '') throw badRequest('Missing session');
      return blockingRead(store, ctx, 'sessions', () => {
        const { index, session } = store.getSession(ctx.rest);
        return { index, status: 200, body: JSON.stringify(session ? [sessionJson(session)] : []) };
      });
    }),
    route('/v1/session/node/', ['GET'], (ctx) => {
      if (ctx.rest === '') throw badRequest('Missing node name');
      return blockingRead(store, ctx, 'sessions', () => {
        const { index, sessions } = store.listSessions(ctx.rest);
        return { index, status: 200, body: JSON.stringify(sessions.map(sessionJson)) };
      });
    }),
    route('/v1/session/list', ['GET'], (ctx) =>
      blockingRead(store, ctx, 'sessions', () => {
        const { index, sessions } = store.listSessions();
        return { index, status: 200, body: JSON.stringify(sessions.map(sessionJson)) };
      }),
    ),
    route('/v1/agent/self', ['GET'], (ctx) => {
      sendJson(ctx, 200, JSON.stringify(agentSelf(store.nodeName, datacenter, host)));
    }),
    route('/v1/status/leader', ['GET'], (ctx) => sendJson(ctx, 200, JSON.stringify('127.0.0.1:8300'))),
    route('/v1/status/peers', ['GET'], (ctx) => sendJson(ctx, 200, JSON.stringify(['127.0.0.1:8300']))),
  ];
}

// ---------------------------------------------------------------------------- KV

async function kvEndpoint(store: ConsulStore, ctx: Ctx): Promise<void> {
  const key = ctx.rest;
  const { query } = ctx;
  switch (ctx.req.method) {
    case 'GET': {
      if (query.has('keys')) {
        // Consul still honours its historic misspelling.
        const separator = query.get('separator') ?? query.get('seperator') ?? '';
        return blockingRead(store, ctx, 'kvs', () => {
          const { index, keys } = store.listKeys(key, separator);
          if (keys.length === 0 && key !== '') return { index, status: 404, body: '' };
          return { index, status: 200, body: JSON.stringify(keys) };
        });
      }
      if (query.has('recurse')) {
        return blockingRead(store, ctx, 'kvs', () => {
          const { index, entries } = store.listPrefix(key);
          if (entries.length === 0) return { index, status: 404, body: '' };
          return { index, status: 200, body: `[${entries.map(entryJson).join(',')}]` };
        });
      }
      if (key === '') throw badRequest('Missing key name');
      return blockingRead(store, ctx, 'kvs', () => {
        const { index, entry } = store.getKey(key);
        if (!entry) return { index, status: 404, body: '' };
        if (query.has('raw')) return { index, status: 200, body: entry.value ?? Buffer.alloc(0), raw: true };
        return { index, status: 200, body: `[${entryJson(entry)}]` };
      });
    }
    case 'PUT': {
      if (key === '') throw badRequest('Missing key name');
      conflictingFlags(query, ['cas', 'acquire', 'release']);
      const flags = query.has('flags') ? parseUint(query.get('flags') ?? '') : 0n;
      let op: KvPutOp = { kind: 'set' };
      if (query.has('cas')) op = { kind: 'cas', index: Number(parseUint(query.get('cas') ?? '')) };
      if (query.has('acquire')) op = { kind: 'lock', session: query.get('acquire') ?? '' };
      if (query.has('release')) op = { kind: 'unlock', session: query.get('release') ?? '' };
      const body = await readBody(ctx.req, KV_MAX_VALUE_BYTES);
      const ok = store.putKey(key, body.length > 0 ? body : null, flags, op);
      sendJson(ctx, 200, String(ok));
      return;
    }
    case 'DELETE': {
      conflictingFlags(query, ['recurse', 'cas']);
      const recurse = query.has('recurse');
      if (!recurse && key === '') throw badRequest('Missing key name');
      const cas = query.has('cas') ? Number(parseUint(query.get('cas') ?? '')) : undefined;
      sendJson(ctx, 200, String(store.deleteKey(key, { recurse, cas })));
      return;
    }
  }
}

function conflictingFlags(query: URLSearchParams, flags: string[]): void {
  if (flags.filter((f) => query.has(f)).length > 1) {
    const sorted = new URLSearchParams([...query.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    throw badRequest(`Conflicting flags: ${sorted.toString()}\n`);
  }
}

/** Go's strconv.ParseUint(s, 10, 64), with its error text. */
function parseUint(s: string): bigint {
  if (!/^[0-9]+$/.test(s)) throw new ConsulHttpError(500, `strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax`);
  const value = BigInt(s);
  if (value > 0xffff_ffff_ffff_ffffn) {
    throw new ConsulHttpError(500, `strconv.ParseUint: parsing ${JSON.stringify(s)}: value out of range`);
  }
  return value;
}

/** Field order and shapes of Consul's DirEntry JSON; Flags is a uint64, so no JSON.stringify. */
function entryJson(e: KvEntry): string {
  const value = e.value && e.value.length > 0 ? JSON.stringify(e.value.toString('base64')) : 'null';
  const session = e.session !== '' ? `,"Session":${JSON.stringify(e.session)}` : '';
  return (
    `{"LockIndex":${e.lockIndex},"Key":${JSON.stringify(e.key)},"Flags":${e.flags.toString()},` +
    `"Value":${value}${session},"CreateIndex":${e.createIndex},"ModifyIndex":${e.modifyIndex}}`
  );
}

// ---------------------------------------------------------------------- sessions

function sessionJson(s: Session) {
  return {
    ID: s.id,
    Name: s.name,
    Node: s.node,
    LockDelay: Number(s.lockDelayNs),
    Behavior: s.behavior,
    TTL: s.ttl,
    NodeChecks: s.nodeChecks,
    ServiceChecks: s.serviceChecks,
    CreateIndex: s.createIndex,
    ModifyIndex: s.modifyIndex,
  };
}

/**
 * Decodes a session/create body like Consul: field names are case-insensitive, unknown
 * fields are ignored, LockDelay may be a Go duration string or a number of nanoseconds,
 * and anything below 1000 ns is taken to mean seconds.
 */
export function decodeSessionCreate(body: Buffer): SessionCreateRequest {
  const out: SessionCreateRequest = {};
  if (body.length === 0) return out;
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw badRequest(`Request decode failed: ${(error as Error).message}`);
  }
  if (raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest('Request decode failed: json: cannot unmarshal into Go value of type structs.Session');
  }
  const fail = (field: string, type: string): never => {
    throw badRequest(`Request decode failed: json: cannot unmarshal into Go struct field Session.${field} of type ${type}`);
  };
  const str = (field: string, v: unknown): string | undefined =>
    v === null ? undefined : typeof v === 'string' ? v : fail(field, 'string');
  const strList = (field: string, v: unknown): string[] | undefined => {
    if (v === null) return [];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) return fail(field, '[]string');
    return v as string[];
  };

  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    switch (name.toLowerCase()) {
      case 'name':
        out.name = str('Name', value);
        break;
      case 'node':
        out.node = str('Node', value);
        break;
      case 'behavior':
        out.behavior = str('Behavior', value);
        break;
      case 'ttl':
        out.ttl = str('TTL', value);
        break;
      case 'checks':
        out.checks = strList('Checks', value);
        break;
      case 'nodechecks':
        out.nodeChecks = strList('NodeChecks', value);
        break;
      case 'servicechecks': {
        if (value === null) break;
        if (!Array.isArray(value)) fail('ServiceChecks', '[]structs.ServiceCheck');
        out.serviceChecks = (value as unknown[]).map((item) => {
          const rec = (item ?? {}) as Record<string, unknown>;
          const get = (k: string) => Object.entries(rec).find(([n]) => n.toLowerCase() === k)?.[1];
          const check: ServiceCheck = { ID: String(get('id') ?? '') };
          const ns = get('namespace');
          if (typeof ns === 'string') check.Namespace = ns;
          return check;
        });
        break;
      }
      case 'lockdelay':
        out.lockDelayNs = decodeLockDelay(value);
        break;
      default:
        break; // ID, Namespace, ... are ignored or overwritten by Consul too
    }
  }
  return out;
}

function decodeLockDelay(value: unknown): bigint {
  let ns: bigint;
  if (typeof value === 'string') {
    try {
      ns = parseGoDuration(value);
    } catch (error) {
      throw badRequest(`Request decode failed: ${(error as GoDurationError).message}`);
    }
  } else if (typeof value === 'number' && Number.isFinite(value)) {
    ns = BigInt(Math.trunc(value));
  } else {
    throw badRequest('Request decode failed: json: cannot unmarshal into Go struct field Session.LockDelay of type time.Duration');
  }
  // Users send 5 meaning seconds; Consul treats anything under 1000 ns that way.
  return ns < 1000n ? ns * 1_000_000_000n : ns;
}

function agentSelf(nodeName: string, datacenter: string, host: string) {
  return {
    Config: {
      Datacenter: datacenter,
      PrimaryDatacenter: datacenter,
      NodeName: nodeName,
      NodeID: '00000000-0000-4000-8000-00000000cd9d',
      Revision: 'cdp-consul-dev',
      Server: true,
      Version: '1.17.0',
    },
    Member: {
      Name: nodeName,
      Addr: host,
      Port: 8301,
      Tags: { dc: datacenter, role: 'consul', build: '1.17.0:cdp-consul-dev' },
      Status: 1,
    },
    Meta: { 'consul-network-segment': '' },
    Stats: {},
  };
}

// ----------------------------------------------------------------- HTTP plumbing

interface ReadResult {
  index: number;
  status: number;
  body: string | Buffer;
  raw?: boolean;
}

/**
 * Runs `read` once, or as a blocking query when `?index=N` (N > 0) is given: re-runs it
 * on every change of `table` until its index exceeds N or `wait` (+ up to wait/16 of
 * jitter, like Consul) elapses, then answers with the latest result.
 */
async function blockingRead(store: ConsulStore, ctx: Ctx, table: Table, read: () => ReadResult): Promise<void> {
  const minIndex = parseIndex(ctx.query);
  let result = read();
  if (minIndex > 0) {
    const waitMs = parseWait(ctx.query);
    const deadline = Date.now() + waitMs + Math.random() * (waitMs / 16);
    while (result.index <= minIndex && !ctx.signal.aborted) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const changed = await store.waitForChange(table, remaining, ctx.signal);
      result = read();
      if (!changed) break;
    }
  }
  if (ctx.res.destroyed || ctx.res.writableEnded) return;
  const headers: Record<string, string> = {
    'X-Consul-Index': String(result.index),
    'X-Consul-KnownLeader': 'true',
    'X-Consul-LastContact': '0',
    'X-Consul-Effective-Consistency': 'leader',
  };
  if (result.status === 404) {
    ctx.res.writeHead(404, { ...headers, 'Content-Length': '0' });
    ctx.res.end();
  } else if (result.raw) {
    const body = result.body as Buffer;
    ctx.res.writeHead(result.status, {
      ...headers,
      'Content-Type': 'text/plain',
      'Content-Length': String(body.length),
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': 'sandbox',
    });
    ctx.res.end(body);
  } else {
    sendJson(ctx, result.status, result.body as string, headers);
  }
}

function parseIndex(query: URLSearchParams): number {
  const raw = query.get('index');
  if (raw === null || raw === '') return 0;
  if (!/^[0-9]+$/.test(raw)) throw badRequest('Invalid index');
  return Number(raw);
}

function parseWait(query: URLSearchParams): number {
  const raw = query.get('wait');
  if (raw === null || raw === '') return DEFAULT_WAIT_MS;
  let ms: number;
  try {
    ms = nanosToMs(parseGoDuration(raw));
  } catch {
    throw badRequest('Invalid wait time');
  }
  return Math.min(Math.max(ms, 0), MAX_WAIT_MS);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) {
    return Promise.reject(new ConsulHttpError(413, `Request body(${declared} bytes) too large, max size: ${limit} bytes.`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new ConsulHttpError(413, `Request body too large, max size: ${limit} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(ctx: Pick<Ctx, 'res' | 'query'>, status: number, json: string, headers: Record<string, string> = {}): void {
  // `?pretty` re-indents like Go's MarshalIndent; only used by humans.
  const body = ctx.query.has('pretty') ? `${JSON.stringify(JSON.parse(json), null, 4)}\n` : json;
  ctx.res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  ctx.res.end(body);
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
