// An HTTP server on 127.0.0.1 that stands for whatever a service calls (a webhook destination,
// a director): it records every request and answers as the test says, per path.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface SinkRequest {
  path: string;
  method: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
  /** Set when the client closed the connection before this request was answered. */
  closedUnanswered?: boolean;
  /** Other requests to the same path that had arrived and were not answered yet when this one arrived. */
  concurrent: number;
  /** When its answer was sent (Date.now() of the sink, like `at`). */
  answeredAt?: number;
}

export interface SinkAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

/** 'hang' never answers (the caller's timeout fires); 'reset' destroys the connection. */
export type SinkHandler = (req: SinkRequest, count: number) => SinkAnswer | 'hang' | 'reset';

export interface HttpSinkOptions {
  /** Keep every request in `requests` (default); false for a long-running sink that only reports them. */
  keep?: boolean;
  /** Called with each request as it arrives; the answer waits for the promise it returns, if any. */
  onRequest?: (req: SinkRequest) => void | Promise<void>;
  /** 127.0.0.1 and a free port unless given. */
  port?: number;
  /** A key and certificate (e.g. makeTestCertificates): the sink speaks HTTPS. */
  tls?: { key: string; cert: string };
}

export class HttpSink {
  readonly requests: SinkRequest[] = [];
  private readonly counts = new Map<string, number>();
  private readonly unanswered = new Map<string, number>();
  private readonly handlers = new Map<string, SinkHandler>();
  private server: http.Server | undefined;
  url = '';

  constructor(private readonly options: HttpSinkOptions = {}) {}

  /** How requests to `path` are answered (200 with no body until a route says otherwise). */
  route(path: string, handler: SinkHandler): this {
    this.handlers.set(path, handler);
    return this;
  }

  async start(): Promise<this> {
    const tls = this.options.tls;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.receive(req, res);
    const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  private receive(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0];
      const concurrent = this.unanswered.get(path) ?? 0;
      const entry: SinkRequest = {
        path,
        method: req.method ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        concurrent,
      };
      if (this.options.keep ?? true) this.requests.push(entry);
      const recorded = this.options.onRequest?.(entry);
      const n = (this.counts.get(path) ?? 0) + 1;
      this.counts.set(path, n);
      this.unanswered.set(path, concurrent + 1);
      res.on('close', () => {
        if (res.writableEnded) return;
        entry.closedUnanswered = true;
        this.unanswered.set(path, (this.unanswered.get(path) ?? 1) - 1);
      });
      if (recorded)
        recorded.then(
          () => this.answer(req, res, entry, n),
          (error: unknown) => res.destroy(error as Error),
        );
      else this.answer(req, res, entry, n);
    });
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, entry: SinkRequest, n: number): void {
    const handler: SinkHandler = this.handlers.get(entry.path) ?? (() => ({ status: 200 }));
    const answer = handler(entry, n);
    if (answer === 'hang') return;
    if (answer === 'reset') {
      req.socket.resetAndDestroy();
      return;
    }
    const send = () => {
      entry.answeredAt = Date.now();
      this.unanswered.set(entry.path, (this.unanswered.get(entry.path) ?? 1) - 1);
      res.writeHead(answer.status, answer.headers ?? {});
      res.end(answer.body ?? '');
    };
    if (answer.delayMs) setTimeout(send, answer.delayMs);
    else send();
  }

  count(path: string): number {
    return this.counts.get(path) ?? 0;
  }

  /** Requests to `path` whose connection the client closed before they were answered. */
  closedUnanswered(path: string): number {
    return this.requests.filter((r) => r.path === path && r.closedUnanswered).length;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}
