// Value-based redaction applied to every serialized log line, so a secret is hidden wherever
// it appears (message, nested field, error text), not only under known key paths.

const MIN_SECRET_LENGTH = 4;
const secrets = new Set<string>();

/** Registers a resolved secret value (token, password, credential) to be masked in all logs. */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value === 'string' && value.length >= MIN_SECRET_LENGTH) secrets.add(value);
}

export function registeredSecretCount(): number {
  return secrets.size;
}

export const REDACTED = '[REDACTED]';

// scheme://user:password@host → scheme://user:[REDACTED]@host
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s"]*:)[^@\s"]+@/gi;
// Authorization header values in free text: Bearer/Basic <token>
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}/g;

export function redactText(text: string): string {
  let out = text.replace(URL_CREDENTIALS, `$1${REDACTED}@`).replace(AUTH_SCHEME, `$1 ${REDACTED}`);
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    // JSON-escaped form of the secret, as it appears inside a serialized line.
    const escaped = JSON.stringify(secret).slice(1, -1);
    if (escaped !== secret && out.includes(escaped)) out = out.split(escaped).join(REDACTED);
  }
  return out;
}
