import { DeadlineError } from './producer';

/**
 * Thrown (or used as a `cause`) by a handler when the failure is not the message's fault — a
 * dependency is down or overloaded. The worker retries it with backoff for as long as it takes
 * and never sends the message to the DLQ.
 */
export class RetriableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetriableError';
  }
}

// kafkajs failures that mean "Kafka is unreachable or slow", not "this record is bad".
const KAFKA_UNAVAILABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSNoBrokerAvailableError',
]);

/**
 * The default rule for "retry without limit": a RetriableError anywhere in the `cause` chain, a
 * produce that missed its deadline, or a kafkajs error that says Kafka itself is unavailable
 * (or that kafkajs marks retriable). Anything else counts against the message's attempts.
 */
export function isRetriableError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof RetriableError || e instanceof DeadlineError) return true;
    if (KAFKA_UNAVAILABLE.has(e.name)) return true;
    if (e.name.startsWith('KafkaJS') && (e as { retriable?: boolean }).retriable === true) return true;
  }
  return false;
}

export interface BackoffOptions {
  /** First wait, ms (default 200). */
  initialMs?: number;
  /** Longest wait, ms (default 10 s). */
  maxMs?: number;
}

/** The wait before retry number `retry` (1-based): doubling from initialMs, capped at maxMs. */
export function backoffMs(retry: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 200;
  const max = options.maxMs ?? 10_000;
  return Math.min(max, initial * 2 ** Math.min(30, Math.max(0, retry - 1)));
}
