import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { REDACTED, redactText } from './redact';

export type { Logger } from 'pino';

/** Key paths that always hold credentials, whatever their value. */
const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'adminToken',
  '*.adminToken',
  'credential',
  '*.credential',
];

export interface CreateLoggerOptions {
  /** Service or component name, emitted as `name` on every line. */
  name: string;
  level?: string;
  /** Where lines go; stdout by default. Tests pass a capturing stream. */
  destination?: DestinationStream;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const pinoOptions: LoggerOptions = {
    name: options.name,
    level: options.level ?? process.env.LOG_LEVEL ?? 'info',
    // Level label, not number, so lines are queryable across services.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: { streamWrite: redactText },
  };
  return options.destination ? pino(pinoOptions, options.destination) : pino(pinoOptions);
}

interface ErrorFields {
  message: string;
  name?: string;
  stack?: string;
  /** Driver error codes (Node's `code`, MySQL's `sqlState`), kept because stacks may be short. */
  code?: string;
  sqlState?: string;
}

/** Serializes an unknown thrown value into loggable fields. */
export function errorFields(error: unknown): { err: ErrorFields } {
  if (!(error instanceof Error)) return { err: { message: String(error) } };
  const fields: ErrorFields = { message: error.message, name: error.name, stack: error.stack };
  const { code, sqlState } = error as { code?: unknown; sqlState?: unknown };
  if (typeof code === 'string') fields.code = code;
  if (typeof sqlState === 'string') fields.sqlState = sqlState;
  return { err: fields };
}
