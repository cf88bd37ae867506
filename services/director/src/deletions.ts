// GDPR deletions at destinations (DELETE_SUBSCRIPTION_ID jobs): each delete job's final outcome
// is recorded in cdp_control (a delete job of one regulation may run at any director, in any
// JobDB), and the director that records a destination's last one reports the destination's part
// of the regulation on cdp.regulation-status (stage `destination.<id>`): FINISHED when every
// job succeeded, FAILED when any was discarded or expired.
import crypto from 'node:crypto';
import type mysql from 'mysql2/promise';
import { loadDefinition } from '@cdp/actions';
import { DELETE_SUBSCRIPTION_ID, deletionPayloadSchema, type DeletionPayload } from '@cdp/director-rpc';
import { deletionStage, type RegulationStatus } from '@cdp/events';
import { recordRegulationDeletion } from '@cdp/jobdb';
import { errorFields, type Logger } from '@cdp/log';
import type { Workspace } from '@cdp/workspace';
import type { Job } from './job';

/** Where reports go (RegulationReporter of @cdp/kafka). */
export interface RegulationStatusSink {
  report(status: RegulationStatus): void;
  flush(): Promise<void>;
}

export interface DeletionReportsOptions {
  /** cdp_control (undefined until the director started). */
  pool: () => mysql.Pool | undefined;
  reporter: RegulationStatusSink;
  workspace: () => Workspace;
  logger: Logger;
  now?: () => number;
  /** Pause before a failed cdp_control write is tried again (doubling, 5 tries). */
  retryMs?: number;
}

const TRIES = 5;

export class DeletionReports {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: DeletionReportsOptions) {}

  /** The engine's onFinal hook: a delete job of a destination with a delete handler is counted. */
  final(job: Job): void {
    const content = job.content;
    if (content?.subscriptionId !== DELETE_SUBSCRIPTION_ID) return;
    const parsed = deletionPayloadSchema.safeParse(safeJson(content.payload));
    if (!parsed.success) return; // discarded as 400 by the driver: no regulation to count for
    const destination = this.options.workspace().destination(job.destinationId);
    // Destinations without a delete handler have no stage to report.
    if (destination?.kind !== 'action' || typeof loadDefinition(destination.type)?.onDelete !== 'function') return;
    const failed = job.state !== 'succeeded';
    const detail = failed ? `${job.state === 'archived' ? 'expired' : job.state}: ${content.lastError ?? 'no answer'}` : null;
    const work = this.record(job.destinationId, parsed.data, failed, detail).finally(() => this.pending.delete(work));
    this.pending.add(work);
  }

  /** Waits for the records and reports in progress (at stop). */
  async idle(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private async record(destinationId: string, payload: DeletionPayload, failed: boolean, detail: string | null): Promise<void> {
    const now = this.options.now ?? Date.now;
    const subject = crypto.createHash('sha256').update(`${payload.spaceId}\u0000${payload.userId}`).digest('hex');
    let delay = this.options.retryMs ?? 1_000;
    for (let attempt = 1; ; attempt++) {
      try {
        const pool = this.options.pool();
        if (!pool) throw new Error('cdp_control is not open');
        const tally = await recordRegulationDeletion(pool, {
          regulationId: payload.regulationId,
          destinationId,
          subject,
          failed,
          detail,
          at: new Date(now()),
        });
        if (payload.subjects !== undefined && tally.handled < payload.subjects) return;
        this.options.reporter.report({
          regulationId: payload.regulationId,
          stage: deletionStage(destinationId),
          status: tally.failed > 0 ? 'FAILED' : 'FINISHED',
          reportedAt: new Date(now()).toISOString(),
          handled: tally.handled,
          failed: tally.failed,
          ...(tally.detail !== null && { detail: tally.detail }),
        });
        await this.options.reporter.flush();
        return;
      } catch (error) {
        if (attempt >= TRIES) {
          this.options.logger.error(
            { ...errorFields(error), regulationId: payload.regulationId, destinationId },
            'a delete job outcome could not be recorded; the regulation stays RUNNING for this destination',
          );
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
