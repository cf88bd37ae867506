import type { IncomingMessage, ServerResponse } from 'node:http';
import { tokenOf } from '@cdp/director-rpc';
import { HttpError, secretMatcher } from '@cdp/http';
import { rpcUnauthorized } from './metrics';

/** True when `authorization` is `Bearer <token>`, compared in constant time (secretMatcher). */
export function tokenMatcher(token: string): (authorization: string | undefined) => boolean {
  const matches = secretMatcher(token);
  return (authorization) => matches(tokenOf(authorization));
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
