/**
 * The write key of a request: HTTP Basic user (with or without the trailing colon), else the
 * body's top-level `writeKey` (also the route for OAuth Bearer callers, who put it there).
 */
export function writeKeyFromAuthorization(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^\s*basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const key = colon === -1 ? decoded : decoded.slice(0, colon);
  return key.trim() === '' ? undefined : key.trim();
}

export function resolveWriteKey(authorization: string | undefined, body: Record<string, unknown> | undefined): string | undefined {
  const fromHeader = writeKeyFromAuthorization(authorization);
  if (fromHeader) return fromHeader;
  const fromBody = body?.writeKey;
  return typeof fromBody === 'string' && fromBody.trim() !== '' ? fromBody.trim() : undefined;
}
