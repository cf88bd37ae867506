import type { LeaderElection } from '@cdp/consul-lock';
import { pruneDeliveryStats } from '@cdp/jobdb';
import { errorFields, type Logger } from '@cdp/log';
import type { ManagerConfig } from './config';
import * as m from './metrics';

export type RetentionSettings = Pick<
  ManagerConfig,
  'MYSQL_URL' | 'CDP_CONTROL_DB' | 'DELIVERY_STATS_RETENTION_MS' | 'DELIVERY_STATS_PRUNE_INTERVAL_MS'
>;

/** Rows one DELETE removes at most, and DELETEs one prune runs at most (the next period goes on). */
const BATCH_ROWS = 5_000;
const MAX_BATCHES = 200;

/**
 * Retention of delivery history: every DELIVERY_STATS_PRUNE_INTERVAL_MS the leader deletes the
 * `cdp_control.delivery_stats` rows older than DELIVERY_STATS_RETENTION_MS, in batches, confirming
 * its leadership before each one (a standby or a deposed leader deletes nothing).
 */
export class DeliveryStatsRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(
    private readonly settings: RetentionSettings,
    private readonly deps: { leader: LeaderElection; logger: Logger; now?: () => number },
  ) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.runOnce(), this.settings.DELIVERY_STATS_PRUNE_INTERVAL_MS);
    this.timer.unref();
    // A new leader prunes at once rather than one period later.
    this.deps.leader.on('elected', () => void this.runOnce());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One prune now (coalesced with a running one); nothing unless this replica leads. */
  runOnce(): Promise<void> {
    this.running ??= this.prune().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async prune(): Promise<void> {
    const { leader, logger } = this.deps;
    if (this.stopped || !leader.isLeader) return;
    const s = this.settings;
    const before = new Date(this.now() - s.DELIVERY_STATS_RETENTION_MS);
    try {
      const prune = (table: 'delivery_stats' | 'delivery_status_codes') =>
        pruneDeliveryStats(s.MYSQL_URL, s.CDP_CONTROL_DB, before, {
          table,
          batchSize: BATCH_ROWS,
          maxBatches: MAX_BATCHES,
          // Leadership re-read before each DELETE, as before each lifecycle action.
          beforeBatch: async () => !this.stopped && (await leader.confirm()),
        });
      const result = await prune('delivery_stats');
      // The status counts appended with those rows age out with them.
      const codes = result.stopped ? undefined : await prune('delivery_status_codes');
      if (codes) m.statusCodesPruned.inc(codes.deleted);
      m.statsPruned.inc(result.deleted);
      m.statsOldestAge.set(result.oldestKept === null ? 0 : Math.max(0, (this.now() - result.oldestKept.getTime()) / 1_000));
      if (result.stopped) logger.warn({ deleted: result.deleted }, 'delivery-stats prune stopped: not (or no longer confirmed) leader');
      else if (result.deleted > 0 || !result.done) {
        logger.info(
          { deleted: result.deleted, before: before.toISOString(), done: result.done },
          'delivery stats older than the retention deleted',
        );
      }
    } catch (error) {
      m.statsPruneErrors.inc();
      logger.warn(errorFields(error), 'delivery-stats prune failed; retrying next period');
    }
  }
}
