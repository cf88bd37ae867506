import crypto from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { Destination } from '@cdp/workspace';
import type { AttemptErrorCode, AttemptResult } from './outcome';
import type { Job } from './job';

/**
 * One destination kind. The director picks a driver by the destination's workspace `type`;
 * transform's action destinations plug in here behind the same interface.
 */
export interface DestinationDriver {
  /** `signal` aborts the call when its JobDB's lock is lost (the result is then ignored). */
  deliver(job: Job, destination: Destination, signal?: AbortSignal): Promise<AttemptResult>;
  close(): Promise<void>;
}

const EXCERPT_BYTES = 1024;

/** Maps undici / socket errors to the outcome table's error kinds (all retried). */
export function classifyError(error: unknown): { code: AttemptErrorCode; message: string } {
  const e = error as { code?: string; name?: string; message?: string; cause?: { code?: string } } | null;
  const code = e?.code ?? e?.cause?.code ?? '';
  const message = String(e?.message ?? error).slice(0, 300);
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || /TIMEOUT/.test(code)) return { code: 'timeout', message };
  if (code === 'ECONNREFUSED') return { code: 'connection_refused', message };
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') {
    return { code: 'connection_reset', message };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { code: 'dns', message };
  return { code: 'network', message };
}

/** `sha256=<hex>` of the exact body bytes with the shared secret. */
export function signBody(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function readExcerpt(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      chunks.push(buf);
      size += buf.length;
      if (size >= EXCERPT_BYTES) break;
    }
  } finally {
    // Leaving the loop early destroys the stream; otherwise it is fully read and the socket reused.
    if (!body.destroyed && size >= EXCERPT_BYTES) body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
}

export interface WebhookDriverOptions {
  /** Connections per origin in the shared pool. */
  connectionsPerOrigin: number;
  keepAliveTimeoutMs?: number;
}

/** Webhook delivery over one pooled undici Agent (keep-alive connections per origin). */
export class WebhookDriver implements DestinationDriver {
  private readonly agent: Agent;

  constructor(options: WebhookDriverOptions) {
    this.agent = new Agent({
      connections: options.connectionsPerOrigin,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 10_000,
      pipelining: 1,
    });
  }

  async deliver(job: Job, destination: Destination, signal?: AbortSignal): Promise<AttemptResult> {
    const started = performance.now();
    if (destination.kind !== 'webhook') {
      return { kind: 'error', code: 'config', message: `destination ${destination.id} is not a webhook`, durationMs: 0 };
    }
    const settings = destination.settings;
    const content = job.content;
    if (!content) throw new Error(`job ${job.id} has no content in memory`);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'cdp-director',
      ...content.headers,
    };
    for (const [name, value] of Object.entries(settings.headers)) headers[name.toLowerCase()] = String(value);
    if (settings.hmacSecret) headers['x-signature'] = signBody(String(settings.hmacSecret), content.payload);
    // One controller per call, aborted by its timeout or by `signal` (a listener removed after
    // the call rather than AbortSignal.any, which keeps every dependent of the JobDB's signal).
    const call = new AbortController();
    const timer = setTimeout(() => call.abort(new DOMException('The operation timed out', 'TimeoutError')), settings.timeoutMs);
    const onAbort = () => call.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await request(settings.url, {
        dispatcher: this.agent,
        method: settings.method,
        headers,
        body: content.payload,
        headersTimeout: settings.timeoutMs,
        bodyTimeout: settings.timeoutMs,
        signal: call.signal,
      });
      const excerpt = await readExcerpt(res.body);
      const retryAfter = res.headers['retry-after'];
      return {
        kind: 'response',
        status: res.statusCode,
        retryAfter: Array.isArray(retryAfter) ? retryAfter[0] : (retryAfter ?? null),
        excerpt,
        durationMs: performance.now() - started,
      };
    } catch (error) {
      return { kind: 'error', ...classifyError(error), durationMs: performance.now() - started };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
