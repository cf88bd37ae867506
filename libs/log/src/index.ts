export { createLogger, errorFields, type CreateLoggerOptions, type Logger } from './logger';
export { registerSecret, redactText, REDACTED, registeredSecretCount } from './redact';
