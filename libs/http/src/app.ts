import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import { errorFields, type Logger } from '@cdp/log';
import { errorBody, HttpError } from './errors';
import { observeRequest } from './metrics';

/** Records request metrics with the route *pattern* (bounded), never the raw URL. */
export function requestMetrics(server: string): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      observeRequest(server, route, req.method, res.statusCode, (performance.now() - started) / 1000);
    });
    next();
  };
}

/** Malformed bodies, oversize bodies and thrown errors all become JSON errors; 5xx are logged. */
export function jsonErrors(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => {
    if (err instanceof HttpError) {
      res.status(err.status).json(errorBody(err.code, err.message));
      return;
    }
    const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 500;
    if (err?.type === 'entity.too.large') {
      res.status(413).json(errorBody('payload_too_large', 'request body exceeds the size limit'));
    } else if (err?.type === 'entity.parse.failed') {
      res.status(400).json(errorBody('invalid_json', 'request body is not valid JSON'));
    } else if (status >= 400 && status < 500) {
      res.status(status).json(errorBody('bad_request', String(err?.message ?? 'bad request')));
    } else {
      logger.error(errorFields(err), 'request failed');
      res.status(500).json(errorBody('internal', 'internal error'));
    }
  };
}

export interface AppOptions {
  /** Label for metrics: `public`, `admin`, `rpc`, `ops`. */
  name: string;
  logger: Logger;
  /** Limit for JSON bodies parsed by express.json; omit to mount no JSON parser. */
  jsonLimitBytes?: number;
  /** Handlers run before the body is read (e.g. authentication: a refused caller's body is never parsed). */
  beforeBody?: RequestHandler[];
}

/**
 * An express app with request metrics, an optional bounded JSON parser, and JSON 404s.
 * Call `finish(app)` after mounting routes to add the 404 and error handlers.
 */
export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestMetrics(options.name));
  for (const handler of options.beforeBody ?? []) app.use(handler);
  if (options.jsonLimitBytes !== undefined) app.use(express.json({ limit: options.jsonLimitBytes }));
  return app;
}

export function finish(app: Express, logger: Logger): Express {
  app.use((_req, res) => {
    res.status(404).json(errorBody('not_found', 'no such route'));
  });
  app.use(jsonErrors(logger));
  return app;
}

export interface RunningServer {
  server: Server;
  port: number;
  url: string;
  /** Stops accepting, lets in-flight requests finish up to `graceMs`, then cuts the rest. */
  close(graceMs?: number): Promise<void>;
}

/** Serves an express app or any plain request listener (see Router). */
export function listen(handler: RequestListener, port: number, host = '0.0.0.0'): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = createServer(handler).listen(port, host);
    server.once('error', reject);
    server.once('listening', () => {
      const actual = (server.address() as AddressInfo).port;
      const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host;
      resolve({
        server,
        port: actual,
        url: `http://${shownHost}:${actual}`,
        close: (graceMs = 10_000) =>
          new Promise<void>((done) => {
            const timer = setTimeout(() => server.closeAllConnections(), graceMs);
            timer.unref();
            server.close(() => {
              clearTimeout(timer);
              done();
            });
            server.closeIdleConnections();
          }),
      });
    });
  });
}
