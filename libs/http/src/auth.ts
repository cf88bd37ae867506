import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpError } from './errors';
import { unauthorized } from './metrics';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * A constant-time comparison against one secret. Both sides are hashed first, so
 * timingSafeEqual always compares equal-length digests: the time taken says nothing about how
 * much of the secret (or its length) a caller got right. An absent value is hashed too, so it
 * costs what a wrong one does.
 */
export function secretMatcher(secret: string): (presented: string | undefined) => boolean {
  const expected = digest(secret);
  return (presented) => timingSafeEqual(digest(presented ?? ''), expected) && presented !== undefined;
}

/**
 * The token an `Authorization` value carries: `Bearer <token>`, or Segment's Basic form
 * `Basic base64(<token>:)` — the token as the user name and an empty password, as `curl -u
 * TOKEN:`, Segment's clients and a browser's prompt (user name only) send it. Undefined for
 * anything else, a non-empty password included.
 */
export function presentedToken(authorization: string | undefined): string | undefined {
  const match = /^(Bearer|Basic) +([^\s]+)$/i.exec(authorization ?? '');
  if (!match) return undefined;
  if (match[1].toLowerCase() === 'bearer') return match[2];
  const decoded = Buffer.from(match[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0 || colon !== decoded.length - 1) return undefined;
  return decoded.slice(0, colon);
}

/**
 * Refuses callers without the token, before the body is read: 401 with a fixed JSON body (no
 * hint of what was wrong) and a Basic challenge, so a browser opening an admin page prompts
 * for the token and then sends it with every request of that page.
 */
export function requireToken(token: string, realm: string, server = 'admin'): RequestHandler {
  const matches = secretMatcher(token);
  const challenge = `Basic realm="${realm.replace(/["\\]/g, '')}", charset="UTF-8"`;
  return (req, res, next) => {
    if (matches(presentedToken(req.headers.authorization))) {
      next();
      return;
    }
    unauthorized.labels(server).inc();
    res.setHeader('WWW-Authenticate', challenge);
    // The request body is left unread: close the connection rather than drain it.
    res.setHeader('Connection', 'close');
    next(
      new HttpError(
        401,
        'authentication_error',
        'a valid admin token is required (Authorization: Bearer <token>, or Basic with the token as user name)',
      ),
    );
  };
}
