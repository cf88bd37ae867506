import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { errorFields, type Logger } from '@cdp/log';
import { errorBody } from './errors';
import { observeRequest } from './metrics';

export interface RouteContext {
  /** Values of the pattern's `:name` segments, URL-decoded. */
  params: Record<string, string>;
  /** The raw query string without `?` ('' when absent). */
  search: string;
}

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, context: RouteContext) => void | Promise<void>;

interface Route {
  pattern: string;
  segments: string[];
  handler: RouteHandler;
}

const NO_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A plain request listener with a route table, for servers on the hot path (tapi's public API).
 * Express allocates several objects per request in its router and swaps the prototypes of
 * req/res; at thousands of small requests a second that was a fifth of tapi's allocations.
 * Static paths are one Map lookup; `:param` patterns are compared segment by segment. It keeps
 * express's lenient matching (one trailing slash, case-insensitive paths), counts requests under
 * their pattern like `requestMetrics`, turns a thrown error into a logged JSON 500, and answers
 * JSON 404 otherwise. HEAD is served by the GET handler (Node writes no body for HEAD).
 */
export class Router {
  private readonly exact = new Map<string, Route>();
  private readonly patterned = new Map<string, Route[]>();

  constructor(
    private readonly name: string,
    private readonly logger: Logger,
  ) {}

  on(method: 'GET' | 'POST', pattern: string, handler: RouteHandler): this {
    const route: Route = { pattern, segments: pattern.split('/'), handler };
    if (pattern.includes('/:')) {
      const list = this.patterned.get(method) ?? [];
      list.push(route);
      this.patterned.set(method, list);
    } else {
      this.exact.set(`${method} ${pattern.toLowerCase()}`, route);
    }
    return this;
  }

  readonly listener: RequestListener = (req, res) => {
    const started = performance.now();
    // An absolute-form target (`POST http://host/v1/track`, sent by some proxies) matches by path.
    const raw = req.url ?? '/';
    const url = raw.startsWith('/') ? raw : raw.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?]*/i, '') || '/';
    const q = url.indexOf('?');
    let path = q < 0 ? url : url.slice(0, q);
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const match = this.match(method, path);
    const route = match?.route.pattern ?? 'unmatched';
    res.once('finish', () => observeRequest(this.name, route, req.method ?? 'GET', res.statusCode, (performance.now() - started) / 1000));
    if (match === null) {
      sendJson(res, 400, errorBody('bad_request', 'malformed URL encoding'));
      return;
    }
    if (!match) {
      sendJson(res, 404, errorBody('not_found', 'no such route'));
      return;
    }
    const context: RouteContext = { params: match.params, search: q < 0 ? '' : url.slice(q + 1) };
    try {
      const done = match.route.handler(req, res, context);
      if (done) done.catch((error: unknown) => this.failed(res, error));
    } catch (error) {
      this.failed(res, error);
    }
  };

  /** The route and its params; undefined when nothing matches, null when a param is not decodable. */
  private match(method: string, path: string): { route: Route; params: Record<string, string> } | undefined | null {
    const exact = this.exact.get(`${method} ${path}`) ?? this.exact.get(`${method} ${path.toLowerCase()}`);
    if (exact) return { route: exact, params: NO_PARAMS };
    const candidates = this.patterned.get(method);
    if (!candidates) return undefined;
    const parts = path.split('/');
    for (const route of candidates) {
      if (route.segments.length !== parts.length) continue;
      const fits = route.segments.every((want, i) =>
        want.startsWith(':') ? parts[i] !== '' : want.toLowerCase() === parts[i].toLowerCase(),
      );
      if (!fits) continue;
      const params: Record<string, string> = {};
      try {
        route.segments.forEach((want, i) => {
          if (want.startsWith(':')) params[want.slice(1)] = decodeURIComponent(parts[i]);
        });
      } catch {
        return null;
      }
      return { route, params };
    }
    return undefined;
  }

  private failed(res: ServerResponse, error: unknown): void {
    this.logger.error(errorFields(error), 'request failed');
    if (res.headersSent) res.destroy();
    else sendJson(res, 500, errorBody('internal', 'internal error'));
  }
}
