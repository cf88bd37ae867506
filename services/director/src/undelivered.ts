import { undeliveredKey, undeliveredSchema, type Undelivered } from '@cdp/events';
import type { Job } from './job';

/** Where expired jobs go (cdp.undelivered in production; a fake in unit tests). */
export interface UndeliveredPublisher {
  publish(records: Array<{ key: string; value: string }>): Promise<void>;
}

/**
 * The cdp.undelivered value: the envelope (rebuilt from the job: the payload is the Segment
 * message for webhooks) plus the delivery summary.
 */
export function undeliveredRecord(job: Job, expiredAt: number): { key: string; value: string; record: Undelivered } {
  const content = job.content;
  if (!content) throw new Error(`job ${job.id} has no content in memory`);
  let message: unknown;
  try {
    message = JSON.parse(content.payload);
  } catch {
    message = content.payload;
  }
  const candidate = {
    v: 1,
    sourceId: job.sourceId,
    messageId: content.messageId,
    receivedAt: new Date(content.receivedAt).toISOString(),
    message,
    destinationId: job.destinationId,
    subscriptionId: content.subscriptionId,
    attempts: job.attempt,
    firstAttemptAt: content.firstAttemptAt === null ? null : new Date(content.firstAttemptAt).toISOString(),
    expiredAt: new Date(expiredAt).toISOString(),
    lastStatus: content.lastStatus,
    lastError: content.lastError,
    lastResponseExcerpt: content.lastResponseExcerpt,
  };
  // Validate so a bad record is caught here, not by the archiver; a payload that is not a Segment
  // event (a caller's own body) still goes out as it is, since losing it would be worse.
  const parsed = undeliveredSchema.safeParse(candidate);
  const record = (parsed.success ? parsed.data : candidate) as Undelivered;
  return { key: undeliveredKey(job.sourceId, job.destinationId), value: JSON.stringify(record), record };
}
