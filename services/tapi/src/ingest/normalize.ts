import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import {
  ENVELOPE_VERSION,
  INVALID_REASONS,
  messageKey,
  stampMessage,
  validateMessage,
  type Envelope,
  type InvalidReason,
  type MessageType,
  type RequestClock,
} from '@cdp/events';
import { BadRequest } from './body';

/** Why an event was dropped (a metric label: a fixed set). */
export type DropReason =
  | InvalidReason
  | 'too_deep'
  | 'unserializable'
  | 'unknown_write_key'
  | 'source_disabled'
  | 'batch_overflow'
  | 'suppressed'
  | 'invalid_id'
  | 'event_too_large';

export const DROP_REASONS: readonly DropReason[] = [
  ...INVALID_REASONS,
  'too_deep',
  'unserializable',
  'unknown_write_key',
  'source_disabled',
  'batch_overflow',
  'suppressed',
  'invalid_id',
  'event_too_large',
];

export type Endpoint = { kind: 'single'; type: MessageType } | { kind: 'batch' };

export interface Limits {
  maxEventBytes: number;
  maxBatchEvents: number;
}

/**
 * What enrichment may add to an event of MAX_EVENT_BYTES (receivedAt, timestamps, context.ip, a
 * generated messageId, the envelope's own fields): the published envelope may be this much over.
 */
export const ENVELOPE_ALLOWANCE_BYTES = 1024;

/**
 * The bytes one request may expand into once its batch-level fields are merged into each event
 * (a 400 `expanded_too_large` past it). Charged as the work is done, so a request stops costing
 * as soon as it passes the cap: its work and memory stay proportional to the cap plus its body.
 */
export class ExpansionBudget {
  private used = 0;
  constructor(readonly maxBytes: number) {}

  charge(bytes: number): void {
    this.used += bytes;
    if (this.used > this.maxBytes) {
      throw new BadRequest(
        'expanded_too_large',
        `the events expand past ${this.maxBytes} bytes once the batch's context and integrations are merged into each`,
      );
    }
  }
}

/** Nesting beyond this is not an analytics event; it only threatens recursive code downstream. */
export const MAX_DEPTH = 64;

export interface ExtractedEvents {
  items: unknown[];
  /** Events past the per-batch limit: dropped, the request still answered 200. */
  overflow: number;
  /** Batch-level fields merged into each item; `bytes` is their serialized size. */
  shared: { context?: Record<string, unknown>; integrations?: Record<string, unknown>; sentAt?: unknown; bytes?: number };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The events of a parsed request. A batch without a `batch` array is malformed (400); an event
 * over the per-event limit fails the request like Segment's (400).
 */
export function extractEvents(
  endpoint: Endpoint,
  body: Record<string, unknown>,
  bodyBytes: number,
  limits: Limits,
  loneSurrogates = false,
): ExtractedEvents {
  if (endpoint.kind === 'single') {
    if (bodyBytes > limits.maxEventBytes) throw new BadRequest('event_too_large', `event exceeds ${limits.maxEventBytes} bytes`);
    return { items: [body], overflow: 0, shared: {} };
  }
  if (!Array.isArray(body.batch)) throw new BadRequest('invalid_body', 'a batch request needs a "batch" array');
  const all = body.batch as unknown[];
  const items = all.length > limits.maxBatchEvents ? all.slice(0, limits.maxBatchEvents) : all;
  // Only a body larger than one event's limit can hold an oversize event: skip the work otherwise.
  if (bodyBytes > limits.maxEventBytes) {
    for (const item of items) {
      if (serializedBytes(item) > limits.maxEventBytes) {
        throw new BadRequest('event_too_large', `an event of the batch exceeds ${limits.maxEventBytes} bytes`);
      }
    }
  }
  const shared: ExtractedEvents['shared'] = {
    context: isObject(body.context) ? body.context : undefined,
    integrations: isObject(body.integrations) ? body.integrations : undefined,
    sentAt: body.sentAt,
  };
  // Once here rather than in every event they are merged into.
  if (loneSurrogates) {
    if (shared.context) replaceLoneSurrogates(shared.context, MAX_DEPTH);
    if (shared.integrations) replaceLoneSurrogates(shared.integrations, MAX_DEPTH);
  }
  if (shared.context || shared.integrations)
    shared.bytes = serializedBytes(shared.context ?? {}) + serializedBytes(shared.integrations ?? {});
  return { items, overflow: all.length - items.length, shared };
}

function serializedBytes(v: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(v) ?? '');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * True when `value` nests deeper than `max`. Recursion stops at `max`, so a hostile depth cannot
 * blow the stack here.
 */
export function depthExceeds(value: unknown, max: number, depth = 1): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (depth > max) return true;
  if (Array.isArray(value)) {
    for (const child of value) if (typeof child === 'object' && child !== null && depthExceeds(child, max, depth + 1)) return true;
    return false;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && depthExceeds(child, max, depth + 1)) return true;
  }
  return false;
}

/**
 * The fields that become Kafka keys, dedup keys and MariaDB columns: an event whose id holds a
 * lone surrogate is dropped (`invalid_id`) rather than stored under an altered id.
 */
const ID_FIELDS = ['messageId', 'userId', 'anonymousId'] as const;

function hasIllFormedId(m: Record<string, unknown>): boolean {
  for (const field of ID_FIELDS) {
    const v = m[field];
    if (typeof v === 'string' && !v.isWellFormed()) return true;
  }
  return false;
}

/**
 * Replaces lone surrogates with U+FFFD in every string and key of `value`, in place (neither
 * Kafka consumers nor MariaDB's JSON accept them). Stops `maxDepth` levels down: anything deeper
 * is dropped as `too_deep` anyway, and the stack stays bounded.
 */
export function replaceLoneSurrogates(value: Record<string, unknown> | unknown[], maxDepth: number): void {
  if (maxDepth <= 0) return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child = value[i];
      if (typeof child === 'string') {
        if (!child.isWellFormed()) value[i] = child.toWellFormed();
      } else if (typeof child === 'object' && child !== null) replaceLoneSurrogates(child as Record<string, unknown>, maxDepth - 1);
    }
    return;
  }
  for (const key of Object.keys(value)) {
    let child = value[key];
    if (typeof child === 'string') {
      if (!child.isWellFormed()) value[key] = child = child.toWellFormed();
    } else if (typeof child === 'object' && child !== null) replaceLoneSurrogates(child as Record<string, unknown>, maxDepth - 1);
    if (!key.isWellFormed()) {
      delete value[key];
      value[key.toWellFormed()] = child;
    }
  }
}

export interface EnrichContext {
  sourceId: string;
  /** receivedAt and the batch's sentAt, parsed once per request. */
  clock: RequestClock;
  clientIp: string | undefined;
  /** The type implied by a single-event path; it wins over the body's. */
  impliedType?: MessageType;
  shared: ExtractedEvents['shared'];
  /** The body may hold lone surrogates (see mayHoldLoneSurrogates): check every string. */
  loneSurrogates?: boolean;
  /** An envelope over this is dropped (`event_too_large`). */
  maxEnvelopeBytes?: number;
  /** The request's expansion budget (throws `expanded_too_large`). */
  budget?: ExpansionBudget;
}

export type Prepared =
  | { ok: true; envelope: Envelope; key: string; value: string; userId: string | undefined }
  | { ok: false; reason: DropReason; detail?: string };

/** Validates and enriches one event into the envelope published to cdp.ingest, reusing `raw`'s objects. */
export function prepareEvent(raw: unknown, ctx: EnrichContext): Prepared {
  if (!isObject(raw)) return { ok: false, reason: 'not_an_object' };
  // Mutated in place: the object comes from this request's JSON.parse and nothing else holds it.
  const m = raw;
  delete m.writeKey;
  if (ctx.impliedType) m.type = ctx.impliedType;
  if (ctx.loneSurrogates) {
    if (hasIllFormedId(m)) return { ok: false, reason: 'invalid_id' };
    replaceLoneSurrogates(m, MAX_DEPTH);
  }
  if (typeof m.messageId === 'number') m.messageId = String(m.messageId);
  if (m.messageId === undefined || m.messageId === null || m.messageId === '') m.messageId = `api-${randomUUID()}`;
  // Validated before the batch fields are merged in (the checks do not read them), so an
  // invalid event costs no merge.
  const checked = validateMessage(m);
  if (!checked.ok) return { ok: false, reason: checked.reason, detail: checked.detail };
  // Charged before merging: what follows (merge, depth walk, serialization) grows with it.
  const sharedBytes = mergeShared(m, ctx.shared);
  if (sharedBytes > 0) ctx.budget?.charge(sharedBytes);
  if (depthExceeds(m, MAX_DEPTH)) return { ok: false, reason: 'too_deep' };
  stampMessage(m, ctx.clock);
  if (ctx.clientIp) {
    if (!isObject(m.context)) m.context = {};
    const context = m.context as Record<string, unknown>;
    if (context.ip === undefined || context.ip === null || context.ip === '') context.ip = ctx.clientIp;
  }
  const message = checked.message;
  const messageId = message.messageId;
  const envelope: Envelope = {
    v: ENVELOPE_VERSION,
    sourceId: ctx.sourceId,
    messageId,
    receivedAt: ctx.clock.receivedAtIso,
    message,
  };
  let value: string;
  try {
    value = JSON.stringify(envelope);
  } catch {
    return { ok: false, reason: 'unserializable' };
  }
  // UTF-8 needs at most 3 bytes per UTF-16 unit: only a long envelope needs its exact size (a
  // short one charges its length, at most 3× under, so the budget still bounds the work).
  const bytes = value.length * 3 > (ctx.maxEnvelopeBytes ?? 0) ? Buffer.byteLength(value) : value.length;
  if (bytes > sharedBytes) ctx.budget?.charge(bytes - sharedBytes);
  if (ctx.maxEnvelopeBytes !== undefined && bytes > ctx.maxEnvelopeBytes) {
    return { ok: false, reason: 'event_too_large', detail: `envelope of ${bytes} bytes` };
  }
  const userId = message.userId === undefined || message.userId === null ? undefined : String(message.userId);
  return { ok: true, envelope, key: messageKey(ctx.sourceId, messageId), value, userId };
}

/** Merges the batch-level context and integrations into `m` (its own keys win); returns the bytes merged in. */
function mergeShared(m: Record<string, unknown>, shared: ExtractedEvents['shared']): number {
  let merged = false;
  if (shared.context && (m.context === undefined || m.context === null || isObject(m.context))) {
    m.context = { ...shared.context, ...((m.context as Record<string, unknown> | null) ?? {}) };
    merged = true;
  }
  if (shared.integrations && (m.integrations === undefined || m.integrations === null || isObject(m.integrations))) {
    m.integrations = { ...shared.integrations, ...((m.integrations as Record<string, unknown> | null) ?? {}) };
    merged = true;
  }
  return merged ? (shared.bytes ?? 0) : 0;
}

/** Pixel `data`: base64 (standard or URL-safe) of a JSON object, or the JSON itself. */
export function decodePixelData(data: unknown): Record<string, unknown> | undefined {
  if (typeof data !== 'string' || data === '') return undefined;
  const attempts = [data.trim()];
  if (!data.trim().startsWith('{')) {
    const decoded = Buffer.from(data, 'base64');
    if (isUtf8(decoded)) attempts.unshift(decoded.toString('utf8'));
  }
  for (const text of attempts) {
    try {
      const parsed = JSON.parse(text);
      if (isObject(parsed)) return parsed;
    } catch {
      // try the next form
    }
  }
  return undefined;
}
