import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { MESSAGE_TYPES, requestClock, type MessageType } from '@cdp/events';
import { errorBody, observeRequest, Router, type RouteContext } from '@cdp/http';
import type { Logger } from '@cdp/log';
import type { Source, Workspace } from '@cdp/workspace';
import { resolveWriteKey } from './ingest/auth';
import { BadRequest, decodeBody, mayHoldLoneSurrogates, parseJsonBody, readRawBody } from './ingest/body';
import {
  decodePixelData,
  ENVELOPE_ALLOWANCE_BYTES,
  ExpansionBudget,
  extractEvents,
  prepareEvent,
  type DropReason,
  type Endpoint,
} from './ingest/normalize';
import { bytesIn, eventsAccepted, eventsDropped, requestsRejected, requestsTotal } from './metrics';
import type { StoredIn } from './publisher';
import { settingsDocument } from './settings-document';
import type { RateLimiter } from './rate-limit';
import { SpoolFullError, type SpoolRecord } from './spool';

export interface IngestLimits {
  maxEventBytes: number;
  maxBatchBytes: number;
  maxBatchEvents: number;
  maxCompressedBytes: number;
  /** Cap on the bytes a request's events expand into once batch-level fields are merged. */
  maxExpandedBytes: number;
}

export interface TapiAppOptions {
  logger: Logger;
  workspace: () => Workspace;
  publish: (records: SpoolRecord[]) => Promise<StoredIn>;
  isSuppressed?: (spaceId: string, userId: string) => boolean;
  rateLimiter: RateLimiter;
  limits: IngestLimits;
  trustProxy: boolean;
  /** apiHost written into the settings document; the request's Host header otherwise. */
  publicHost?: string;
}

const SHORT: Record<string, MessageType> = { i: 'identify', t: 'track', p: 'page', s: 'screen', g: 'group', a: 'alias' };
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const SUCCESS = '{"success":true}';

class RateLimited extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('rate limited');
  }
}

function clientIp(req: IncomingMessage, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    const xff = req.headers['x-forwarded-for'];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0]?.trim();
    if (first) return first;
  }
  const addr = req.socket.remoteAddress;
  return addr?.startsWith('::ffff:') ? addr.slice(7) : addr;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

/** The answer to almost every request, with its headers built once. */
function sendSuccess(res: ServerResponse): void {
  res.setHeader('Content-Type', JSON_TYPE);
  res.setHeader('Content-Length', SUCCESS.length);
  res.statusCode = 200;
  res.end(SUCCESS);
}

/** CORS for analytics.js from any origin; credentials are allowed so the origin is echoed. */
function cors(req: IncomingMessage, res: ServerResponse): void {
  const origin = req.headers.origin;
  res.setHeader('Access-Control-Allow-Origin', origin ?? '*');
  if (origin) {
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Vary', 'Origin');
  }
}

/**
 * The public tracking API. Everything here is synchronous to the request except the publish,
 * which resolves only once the events are durable, so a 200 always means "stored".
 */
export function buildApp(options: TapiAppOptions): RequestListener {
  const { logger, limits } = options;
  // A plain route table rather than express: see Router for why (per-request allocations).
  const router = new Router('public', logger);

  // Sampled: at most one line per reason every 10 s, so a flood of bad events cannot flood logs.
  const lastLogged = new Map<DropReason, number>();
  const drop = (reason: DropReason, n = 1, fields: Record<string, unknown> = {}) => {
    if (n <= 0) return;
    eventsDropped.labels(reason).inc(n);
    const now = Date.now();
    if ((lastLogged.get(reason) ?? 0) + 10_000 <= now) {
      lastLogged.set(reason, now);
      logger.info({ reason, events: n, ...fields }, 'events dropped (sampled)');
    }
  };

  /** Validates, enriches and publishes; returns once durable. Throws BadRequest/RateLimited/SpoolFullError. */
  async function accept(
    endpoint: Endpoint,
    body: Record<string, unknown>,
    bodyBytes: number,
    req: IncomingMessage,
    receivedAt: Date,
    loneSurrogates: boolean,
  ): Promise<void> {
    const extracted = extractEvents(endpoint, body, bodyBytes, limits, loneSurrogates);
    drop('batch_overflow', extracted.overflow);
    const writeKey = resolveWriteKey(req.headers.authorization, body);
    const source: Source | undefined = writeKey ? options.workspace().sourceByWriteKey(writeKey) : undefined;
    if (!source) {
      drop('unknown_write_key', extracted.items.length);
      return;
    }
    if (!source.enabled) {
      drop('source_disabled', extracted.items.length);
      return;
    }
    const decision = options.rateLimiter.take(source.id, source.rateLimit, extracted.items.length);
    if (!decision.ok) throw new RateLimited(decision.retryAfterSeconds);
    const ip = clientIp(req, options.trustProxy);
    const records: SpoolRecord[] = [];
    const clock = requestClock(receivedAt, extracted.shared.sentAt);
    const budget = new ExpansionBudget(limits.maxExpandedBytes);
    let fitting = 0;
    let tooLarge = 0;
    for (const item of extracted.items) {
      const prepared = prepareEvent(item, {
        sourceId: source.id,
        clock,
        clientIp: ip,
        impliedType: endpoint.kind === 'single' ? endpoint.type : undefined,
        shared: extracted.shared,
        loneSurrogates,
        maxEnvelopeBytes: limits.maxEventBytes + ENVELOPE_ALLOWANCE_BYTES,
        budget,
      });
      if (!prepared.ok) {
        if (prepared.reason === 'event_too_large') tooLarge++;
        drop(prepared.reason, 1, { sourceId: source.id, detail: prepared.detail?.slice(0, 200) });
        continue;
      }
      fitting++;
      if (prepared.userId !== undefined && options.isSuppressed?.(source.spaceId, prepared.userId)) {
        drop('suppressed', 1, { sourceId: source.id });
        continue;
      }
      records.push({ key: prepared.key, value: prepared.value, space: source.spaceId, user: prepared.userId });
    }
    // Oversize events alone fail the request (as one oversize event as sent does); beside events that fit, they are dropped.
    if (tooLarge > 0 && fitting === 0) {
      throw new BadRequest('event_too_large', `no event fits in ${limits.maxEventBytes} bytes once the batch's context is merged into it`);
    }
    if (records.length === 0) return;
    const stored = await options.publish(records);
    eventsAccepted.labels(source.id, stored).inc(records.length);
  }

  function fail(res: ServerResponse, label: string, error: unknown): void {
    if (error instanceof BadRequest) {
      requestsRejected.labels(error.reason).inc();
      requestsTotal.labels(label, '400').inc();
      // An oversize body may still be arriving: close the connection rather than read it all.
      sendJson(
        res,
        400,
        JSON.stringify(errorBody(error.reason, error.message)),
        error.reason === 'payload_too_large' ? { Connection: 'close' } : {},
      );
    } else if (error instanceof RateLimited) {
      requestsRejected.labels('rate_limited').inc();
      requestsTotal.labels(label, '429').inc();
      const seconds = String(error.retryAfterSeconds);
      sendJson(res, 429, JSON.stringify(errorBody('rate_limited', 'too many events for this source')), {
        'Retry-After': seconds,
        'X-RateLimit-Reset': seconds,
      });
    } else if (error instanceof SpoolFullError) {
      requestsRejected.labels('spool_full').inc();
      requestsTotal.labels(label, '503').inc();
      logger.error({ err: { message: error.message } }, 'cannot store events: kafka unavailable and spool full');
      sendJson(res, 503, JSON.stringify(errorBody('unavailable', 'events cannot be stored right now; retry later')), {
        'Retry-After': '5',
      });
    } else {
      requestsRejected.labels('internal').inc();
      requestsTotal.labels(label, '500').inc();
      logger.error({ err: { message: (error as Error)?.message, stack: (error as Error)?.stack } }, 'ingest failed');
      sendJson(res, 500, JSON.stringify(errorBody('internal', 'internal error')));
    }
  }

  const ingest = (endpoint: Endpoint, label: string) => async (req: IncomingMessage, res: ServerResponse) => {
    const receivedAt = new Date();
    try {
      const raw = await readRawBody(req, limits.maxCompressedBytes);
      bytesIn.labels('wire').inc(raw.length);
      const decoded = await decodeBody(raw, req.headers['content-encoding'], limits.maxBatchBytes);
      bytesIn.labels('decoded').inc(decoded.length);
      const body = parseJsonBody(decoded);
      await accept(endpoint, body, decoded.length, req, receivedAt, mayHoldLoneSurrogates(decoded));
      requestsTotal.labels(label, '200').inc();
      sendSuccess(res);
    } catch (error) {
      fail(res, label, error);
    }
  };

  for (const type of MESSAGE_TYPES) {
    router.on('POST', `/v1/${type}`, ingest({ kind: 'single', type }, type));
  }
  for (const [letter, type] of Object.entries(SHORT)) {
    router.on('POST', `/v1/${letter}`, ingest({ kind: 'single', type }, type));
  }
  for (const path of ['batch', 'import', 'b']) {
    router.on('POST', `/v1/${path}`, ingest({ kind: 'batch' }, path));
  }

  // Pixels always answer the gif: an email client shows nothing else and never retries.
  router.on('GET', '/v1/pixel/:type', async (req, res, { params, search }) => {
    const type = params.type as MessageType;
    try {
      const data = new URLSearchParams(search).get('data') ?? undefined;
      const body = decodePixelData(data);
      if (body && MESSAGE_TYPES.includes(type)) {
        // A pixel is one small event: check its strings rather than scan for escapes.
        await accept({ kind: 'single', type }, body, Buffer.byteLength(data ?? ''), req, new Date(), true);
      } else {
        requestsRejected.labels('invalid_pixel').inc();
      }
    } catch (error) {
      const reason =
        error instanceof BadRequest
          ? error.reason
          : error instanceof RateLimited
            ? 'rate_limited'
            : error instanceof SpoolFullError
              ? 'spool_full'
              : 'internal';
      requestsRejected.labels(reason).inc();
      if (reason === 'internal' || reason === 'spool_full')
        logger.warn({ err: { message: (error as Error).message } }, 'pixel event not stored');
    }
    requestsTotal.labels('pixel', '200').inc();
    res.writeHead(200, {
      'Content-Type': 'image/gif',
      'Content-Length': GIF.length,
      'Cache-Control': 'no-cache, no-store, must-revalidate',
    });
    res.end(GIF);
  });

  // The settings document analytics.js (and the mobile SDKs) load: it points them back here (settings-document.ts).
  const settings = (req: IncomingMessage, res: ServerResponse, { params }: RouteContext) => {
    const source = options.workspace().sourceByWriteKey(params.writeKey);
    if (!source || !source.enabled) {
      requestsTotal.labels('settings', '404').inc();
      sendJson(res, 404, JSON.stringify(errorBody('not_found', 'unknown write key')));
      return;
    }
    const host = options.publicHost ?? String(req.headers.host ?? 'localhost');
    const doc = settingsDocument(options.workspace(), source, params.writeKey, host);
    requestsTotal.labels('settings', '200').inc();
    sendJson(res, 200, JSON.stringify(doc), { 'Cache-Control': 'public, max-age=60' });
  };
  router.on('GET', '/v1/projects/:writeKey/settings', settings);
  router.on('GET', '/projects/:writeKey/settings', settings);

  return (req, res) => {
    cors(req, res);
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', String(req.headers['access-control-request-headers'] ?? 'Content-Type, Authorization'));
      res.setHeader('Access-Control-Max-Age', '86400');
      res.statusCode = 204;
      res.end();
      requestsTotal.labels('preflight', '204').inc();
      observeRequest('public', 'preflight', 'OPTIONS', 204, 0);
      return;
    }
    router.listener(req, res);
  };
}
