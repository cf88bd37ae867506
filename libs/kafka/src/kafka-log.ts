// Maps kafkajs's own log lines onto our levels. kafkajs logs every retried protocol error at
// ERROR (a leader election after topic creation, a group coordinator still loading), and a
// broker outage produces hundreds of connection errors per minute. Known transient conditions
// become debug lines; connection failures become one summarizing warning per window and kind;
// everything else keeps its level. Each matched line counts in cdp_kafka_client_errors_total.
import { logLevel, type LogEntry } from 'kafkajs';

export type KafkaLogLevel = 'error' | 'warn' | 'debug' | 'trace';

/**
 * What a matched kafkajs line is: `quiet` ones retry and succeed on their own at start (debug,
 * counted); `summarize` ones repeat while a broker is unreachable; a `notice` is neither (debug).
 */
interface KafkaLogRule {
  type: string;
  pattern: RegExp;
  outcome: 'quiet' | 'summarize' | 'notice';
}

export const KAFKA_LOG_RULES: readonly KafkaLogRule[] = [
  {
    type: 'leader-election',
    pattern: /no leader for this topic-partition|leadership election|not the leader for|leader not available/i,
    outcome: 'quiet',
  },
  {
    type: 'coordinator',
    pattern: /coordinator is not available|coordinator is loading|not the correct coordinator|coordinator is not aware of this member/i,
    outcome: 'quiet',
  },
  { type: 'unknown-topic-partition', pattern: /does not host this topic-partition/i, outcome: 'quiet' },
  { type: 'rebalance', pattern: /group is rebalancing|rebalance in progress|resync group/i, outcome: 'quiet' },
  { type: 'topic-exists', pattern: /topic with this name already exists/i, outcome: 'quiet' },
  // InitProducerId while the previous epoch's transaction is still being aborted (a worker taking
  // over a partition fences its predecessor): kafkajs retries until the abort completed.
  { type: 'concurrent-transactions', pattern: /another concurrent operation on the same transaction was ongoing/i, outcome: 'quiet' },
  // Our producers bound retries on purpose (a send has a deadline, then fails over): not a fault.
  { type: 'idempotent-retries-notice', pattern: /^Limiting retries for the idempotent producer/, outcome: 'notice' },
  {
    type: 'connection',
    pattern:
      /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|Connection error|Connection timeout|Closed connection|Failed to connect to (seed )?broker|Request timed out|socket hang up/i,
    outcome: 'summarize',
  },
  { type: 'consumer-restart', pattern: /^Restarting the consumer in/, outcome: 'summarize' },
];

export interface KafkaLogDecision {
  level: KafkaLogLevel;
  message: string;
  fields: Record<string, unknown>;
  /** The rule's type when the line matched one; `other` for an unmatched error line. */
  type?: string;
}

export interface KafkaLogRouterOptions {
  /** At most one summarizing warning per kind in this many milliseconds. */
  summaryWindowMs?: number;
  now?: () => number;
  /** Called once per counted line (matched rule, or `other` for an unmatched error). */
  count?: (type: string) => void;
}

export const DEFAULT_KAFKA_LOG_SUMMARY_WINDOW_MS = 30_000;

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.message;
  return '';
}

/** Decides, per kafkajs log entry, the level and fields of our line; pure except for its window state. */
export class KafkaLogRouter {
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly count: (type: string) => void;
  /** Per summarized kind: when its last warning went out and how many lines it has absorbed since. */
  private readonly windows = new Map<string, { warnedAt: number; absorbed: number }>();

  constructor(options: KafkaLogRouterOptions = {}) {
    this.windowMs = options.summaryWindowMs ?? DEFAULT_KAFKA_LOG_SUMMARY_WINDOW_MS;
    this.now = options.now ?? Date.now;
    this.count = options.count ?? (() => undefined);
  }

  route(entry: Pick<LogEntry, 'namespace' | 'level' | 'log'>): KafkaLogDecision {
    const { message, ...extra } = entry.log;
    const fields: Record<string, unknown> = { kafka: { namespace: entry.namespace, ...extra } };
    if (entry.level === logLevel.INFO) return { level: 'debug', message, fields };
    if (entry.level !== logLevel.ERROR && entry.level !== logLevel.WARN) return { level: 'trace', message, fields };

    const haystack = `${message} ${text(extra.error)}`;
    // A consumer crash means kafkajs gave up retrying: never quiet, whatever the cause was.
    const crashed = /^Crash: /.test(message);
    const rule = KAFKA_LOG_RULES.find((r) => r.pattern.test(haystack) && !(crashed && r.outcome === 'quiet'));
    const ownLevel: KafkaLogLevel = entry.level === logLevel.ERROR ? 'error' : 'warn';
    if (!rule) {
      if (ownLevel === 'error') this.count('other');
      return { level: ownLevel, message, fields };
    }
    if (rule.outcome === 'notice') return { level: 'debug', message, fields, type: rule.type };
    this.count(rule.type);
    if (rule.outcome === 'quiet') return { level: 'debug', message, fields, type: rule.type };

    const now = this.now();
    const window = this.windows.get(rule.type);
    if (window && now - window.warnedAt < this.windowMs) {
      window.absorbed += 1;
      return { level: 'debug', message, fields, type: rule.type };
    }
    const similar = (window?.absorbed ?? 0) + 1;
    this.windows.set(rule.type, { warnedAt: now, absorbed: 0 });
    const sinceSeconds = window ? Math.round((now - window.warnedAt) / 1000) : 0;
    const summary = window
      ? `kafka client ${rule.type} failures continue: ${similar} since the warning ${sinceSeconds} s ago (latest: ${message})`
      : `kafka client ${rule.type} failure: ${message} (further ones are summarized every ${Math.round(this.windowMs / 1000)} s)`;
    return { level: 'warn', message: summary, fields: { ...fields, kafkaLogType: rule.type, similar }, type: rule.type };
  }
}
