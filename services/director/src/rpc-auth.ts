import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tokenOf } from '@cdp/director-rpc';
import { HttpError } from '@cdp/http';
import { rpcUnauthorized } from './metrics';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * True when `authorization` is `Bearer <token>`. Both sides are hashed first, so
 * timingSafeEqual always compares equal-length digests: the time taken says nothing about how
 * much of the token (or its length) a caller got right.
 */
export function tokenMatcher(token: string): (authorization: string | undefined) => boolean {
  const expected = digest(token);
  return (authorization) => {
    const presented = tokenOf(authorization);
    // Hashed even when absent, so a missing header costs what a wrong one does.
    const same = timingSafeEqual(digest(presented ?? ''), expected);
    return same && presented !== undefined;
  };
}

/**
 * Middleware refusing calls without the RPC token: 401 with a fixed body (no hint of what was
 * wrong), before the body is read.
 */
export function requireToken(token: string): (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void {
  const matches = tokenMatcher(token);
  return (req, res, next) => {
    if (matches(req.headers.authorization)) {
      next();
      return;
    }
    rpcUnauthorized.inc();
    res.setHeader('www-authenticate', 'Bearer');
    // The request body is left unread: close the connection rather than drain it.
    res.setHeader('connection', 'close');
    next(new HttpError(401, 'unauthorized', 'unauthorized'));
  };
}
