import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import express, { type Express, type RequestHandler } from 'express';
import { registerSecret, REDACTED, type Logger } from '@cdp/log';
import { createApp, finish, listen, type RunningServer } from './app';
import { requireToken } from './auth';

const ADMIN_SERVER = 'admin';
/** Query parameters whose values never reach a log line. */
const SECRET_PARAM = /token|secret|password|passwd|auth|key|signature|credential/i;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export interface StaticAssets {
  /** URL path the directory is served under, e.g. `/ui`. */
  path: string;
  /** Directory on disk; must exist when the server is built. */
  dir: string;
}

export interface AdminAppOptions {
  /** The service's name: in the Basic realm and in log lines. */
  service: string;
  /** ADMIN_TOKEN: callers send `Authorization: Bearer <token>` or Basic with it as user name. */
  token: string;
  logger: Logger;
  /** Limit of JSON request bodies; 1 MiB when omitted. */
  jsonLimitBytes?: number;
  /** Directories served as-is behind the same authentication (e.g. a page's HTML, JS, CSS). */
  assets?: StaticAssets[];
  /** Mounts the service's routes; thrown errors become JSON errors, unknown paths a JSON 404. */
  routes: (app: Express) => void;
}

export interface AdminServerOptions extends AdminAppOptions {
  /** ADMIN_PORT; 0 picks a free port (tests). */
  port: number;
  host?: string;
}

/** `?a=1&token=x` with every secret-looking parameter's value replaced, for a log line. */
export function redactedQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return '';
  const params = new URLSearchParams(url.slice(q + 1));
  for (const [name] of params) if (SECRET_PARAM.test(name)) params.set(name, REDACTED);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/**
 * Gives every request an id (the caller's `X-Request-Id` when it is sane, else a new one),
 * answers it as `Request-Id` like Segment's APIs, and logs one line per finished request:
 * method, path, redacted query, status, duration. Never a header, so never the token.
 */
export function requestLog(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('Request-Id', id);
    res.once('finish', () => {
      const url = req.originalUrl;
      const q = url.indexOf('?');
      const line = {
        req: { id, method: req.method, path: q < 0 ? url : url.slice(0, q), query: redactedQuery(url) },
        res: { status: res.statusCode },
        ms: Math.round((performance.now() - started) * 10) / 10,
      };
      if (res.statusCode >= 500) logger.warn(line, 'admin request failed');
      else logger.info(line, 'admin request');
    });
    next();
  };
}

function checkedAssets(assets: StaticAssets[]): StaticAssets[] {
  for (const a of assets) {
    if (!a.path.startsWith('/')) throw new Error(`admin assets path ${a.path} must start with /`);
    const isDir = statSync(a.dir, { throwIfNoEntry: false })?.isDirectory() ?? false;
    if (!isDir) throw new Error(`admin assets directory ${a.dir} (for ${a.path}) does not exist or is not a directory`);
  }
  return assets;
}

/**
 * The admin API of a service (identity, transform, jobdb-manager, archiver) as an express app:
 * request log and id, token check before the body is read, bounded JSON bodies, the service's
 * routes, static assets, then JSON 404s and JSON errors. The token is registered as a secret,
 * so no log line of the process can show it.
 */
export function createAdminApp(options: AdminAppOptions): Express {
  registerSecret(options.token);
  const assets = checkedAssets(options.assets ?? []);
  const app = createApp({
    name: ADMIN_SERVER,
    logger: options.logger,
    jsonLimitBytes: options.jsonLimitBytes ?? 1024 * 1024,
    beforeBody: [requestLog(options.logger), requireToken(options.token, `${options.service} admin`, ADMIN_SERVER)],
  });
  options.routes(app);
  for (const a of assets) app.use(a.path, express.static(a.dir, { fallthrough: true, index: 'index.html', dotfiles: 'ignore' }));
  return finish(app, options.logger);
}

/** Builds the admin app and listens on its own port (never the public one). */
export async function startAdminServer(options: AdminServerOptions): Promise<RunningServer> {
  const app = createAdminApp(options);
  const running = await listen(app, options.port, options.host);
  options.logger.info({ port: running.port }, `${options.service} admin API listening`);
  return running;
}
