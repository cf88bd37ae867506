import { z } from 'zod';

export type SecretRefKind = '$env' | '$file';

/**
 * A reference to a secret held outside the workspace file: an environment variable or a
 * mounted file (a Kubernetes Secret). Parsing turns `{ $env: NAME }` / `{ $file: /path }` into
 * this class so that resolution only touches positions where the schema allows a secret.
 */
export class SecretReference {
  constructor(
    readonly kind: SecretRefKind,
    readonly ref: string,
  ) {}

  /** The reference as written in the file; this is what admin views show. */
  toJSON(): Record<string, string> {
    return { [this.kind]: this.ref };
  }

  toString(): string {
    return `{ ${this.kind}: ${this.ref} }`;
  }
}

/** The JSON form of a reference, as shown in redacted views. */
export type SecretRefView = { $env: string } | { $file: string };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const SECRET_REF_HINT = 'a secret reference ({ $env: NAME } or { $file: /path })';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True when a value is meant as a secret reference (an object with a `$env` or `$file` key). */
export function looksLikeSecretRef(value: unknown): value is Record<string, unknown> {
  return isPlainObject(value) && ('$env' in value || '$file' in value);
}

/** Parses a reference object; returns an error message when it is malformed. */
export function parseSecretRef(value: unknown): SecretReference | string {
  if (!looksLikeSecretRef(value)) return `must be ${SECRET_REF_HINT}`;
  const keys = Object.keys(value);
  if (keys.length !== 1) return `${SECRET_REF_HINT} has exactly one key, found: ${keys.join(', ')}`;
  if ('$env' in value) {
    const name = value.$env;
    if (typeof name !== 'string' || !ENV_NAME.test(name)) return '$env must name an environment variable ([A-Za-z_][A-Za-z0-9_]*)';
    return new SecretReference('$env', name);
  }
  const file = value.$file;
  if (typeof file !== 'string' || file.trim() === '') return '$file must be a non-empty path';
  return new SecretReference('$file', file);
}

/** A field that must be a secret reference: literal values are refused, so credentials never sit in a ConfigMap. */
export function secretField(kindOfValue = 'credential') {
  return z.unknown().transform((value, ctx) => {
    if (value === undefined || value === null) {
      ctx.issues.push({ code: 'custom', message: 'is required', input: undefined });
      return z.NEVER;
    }
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      ctx.issues.push({
        code: 'custom',
        message: `must be ${SECRET_REF_HINT}, not a literal value (${kindOfValue})`,
        input: undefined,
      });
      return z.NEVER;
    }
    const parsed = parseSecretRef(value);
    if (typeof parsed === 'string') {
      ctx.issues.push({ code: 'custom', message: parsed, input: undefined });
      return z.NEVER;
    }
    return parsed;
  });
}

/** A field that may be a literal string or a secret reference (write keys, ordinary header values). */
export function stringOrSecret(check?: (literal: string) => string | undefined) {
  return z.unknown().transform((value, ctx): string | SecretReference => {
    if (typeof value === 'string') {
      const problem = value === '' ? 'must not be empty' : check?.(value);
      if (problem) {
        ctx.issues.push({ code: 'custom', message: problem, input: undefined });
        return z.NEVER;
      }
      return value;
    }
    if (value === undefined || value === null) {
      ctx.issues.push({ code: 'custom', message: 'is required', input: undefined });
      return z.NEVER;
    }
    if (!looksLikeSecretRef(value)) {
      ctx.issues.push({ code: 'custom', message: `must be a string or ${SECRET_REF_HINT}`, input: undefined });
      return z.NEVER;
    }
    const parsed = parseSecretRef(value);
    if (typeof parsed === 'string') {
      ctx.issues.push({ code: 'custom', message: parsed, input: undefined });
      return z.NEVER;
    }
    return parsed;
  });
}

/** Replaces every SecretReference in a type by the string it resolves to. */
export type Resolved<T> = T extends SecretReference
  ? string
  : T extends readonly (infer U)[]
    ? Resolved<U>[]
    : T extends object
      ? { [K in keyof T]: Resolved<T[K]> }
      : T;
