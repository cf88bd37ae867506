import { HttpError } from './errors';

/**
 * Paging as Segment's Profile API does it: a list takes `limit` and `next` (the cursor of the
 * previous answer's `cursor.next`) and answers `cursor: { url, has_more, next }`. Cursors are
 * opaque to callers: base64url of a JSON value chosen by the route (e.g. the last row's key).
 */
export interface PageRequest {
  limit: number;
  /** The decoded cursor; undefined on the first page. */
  after: unknown;
}

export interface Cursor {
  /** The request's path and query, as Segment answers it. */
  url: string;
  has_more: boolean;
  /** Pass as `next` to get the following page; '' on the last page. */
  next: string;
}

export interface PageLimits {
  defaultLimit: number;
  maxLimit: number;
}

function invalid(message: string): HttpError {
  return new HttpError(400, 'invalid_request_error', message);
}

function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${name} must be given once`);
  return value;
}

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): unknown {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid('next is not a cursor this server issued');
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('next is not a cursor this server issued');
  }
}

/** Reads `limit` (an integer in 1..maxLimit, defaultLimit when absent) and `next` from a parsed query. */
export function pageRequest(query: Record<string, unknown>, limits: PageLimits): PageRequest {
  const rawLimit = single(query, 'limit');
  let limit = limits.defaultLimit;
  if (rawLimit !== undefined) {
    if (!/^\d{1,9}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > limits.maxLimit) {
      throw invalid(`limit must be an integer from 1 to ${limits.maxLimit}`);
    }
    limit = Number(rawLimit);
  }
  const next = single(query, 'next');
  return { limit, after: next === undefined || next === '' ? undefined : decodeCursor(next) };
}

/**
 * One page of `rows`, which the route fetched with `limit + 1` so it knows whether more follow;
 * `cursorOf` gives the cursor value of a page's last row.
 */
export function takePage<T>(rows: T[], limit: number, cursorOf: (last: T) => unknown): { items: T[]; next: string | undefined } {
  if (rows.length <= limit) return { items: rows, next: undefined };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(cursorOf(items[items.length - 1])) };
}

/** The `cursor` member of a list answer. `url` is the request's own path and query. */
export function pageCursor(url: string, next: string | undefined): Cursor {
  return { url, has_more: next !== undefined, next: next ?? '' };
}
