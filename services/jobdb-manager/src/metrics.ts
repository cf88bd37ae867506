import { counter, gauge } from '@cdp/metrics';

export const isLeader = gauge({ name: 'cdp_jobdb_manager_leader', help: '1 while this replica is the leader (acts), 0 on a standby' });

export const jobDbs = gauge({
  name: 'cdp_jobdb_manager_jobdbs',
  help: 'Registered JobDBs by state, as of the last pass of the leader',
  labelNames: ['state'] as const,
});

export const liveDirectors = gauge({
  name: 'cdp_jobdb_manager_live_directors',
  help: 'Live director sessions (director:*) seen by the last pass',
});

export const jobDbBound = gauge({
  name: 'cdp_jobdb_manager_jobdb_bound',
  help: 'Most JobDBs expected: directors x (1 + ceil(retry window / rotation period)) + spare',
});

export const provisioned = counter({ name: 'cdp_jobdb_manager_provisioned_total', help: 'JobDBs created and registered' });

export const rotations = counter({
  name: 'cdp_jobdb_manager_rotations_total',
  help: 'Active JobDBs moved to draining, by reason (age, jobs, bytes)',
  labelNames: ['reason'] as const,
});

export const orphansMarked = counter({
  name: 'cdp_jobdb_manager_orphans_total',
  help: 'Active JobDBs found with a lease and no live holder, moved to draining for adoption',
});

export const orphaned = gauge({
  name: 'cdp_jobdb_manager_orphaned_jobdbs',
  help: 'JobDBs (active with a lease, or draining) without a live holder for longer than JOBDB_ORPHAN_ALERT_MS',
});

export const drops = counter({
  name: 'cdp_jobdb_manager_drops_total',
  help: 'JobDB databases dropped and unregistered, by kind (drained, spare: an unused active one above the need)',
  labelNames: ['kind'] as const,
});

export const dropsRefused = counter({
  name: 'cdp_jobdb_manager_drops_refused_total',
  help: 'Drained JobDBs found holding a non-final job: not dropped, moved back to draining',
});

export const passErrors = counter({ name: 'cdp_jobdb_manager_pass_errors_total', help: 'Leader passes that failed (retried next period)' });

export const oldestPendingJobAge = gauge({
  name: 'cdp_jobdb_manager_oldest_pending_job_age_seconds',
  help: 'Age of the oldest job without a final state across registered JobDBs (0 when none)',
});

export const statsPruned = counter({
  name: 'cdp_jobdb_manager_delivery_stats_pruned_total',
  help: 'cdp_control.delivery_stats rows deleted for being older than DELIVERY_STATS_RETENTION_MS',
});

export const statusCodesPruned = counter({
  name: 'cdp_jobdb_manager_delivery_status_codes_pruned_total',
  help: 'cdp_control.delivery_status_codes rows deleted for being older than DELIVERY_STATS_RETENTION_MS',
});

export const statsPruneErrors = counter({
  name: 'cdp_jobdb_manager_delivery_stats_prune_errors_total',
  help: 'Delivery-stats prunes that failed (retried next period)',
});

export const statsOldestAge = gauge({
  name: 'cdp_jobdb_manager_delivery_stats_oldest_age_seconds',
  help: 'Age of the minute of the first delivery_stats row kept (append order), after the last prune; 0 when the table is empty',
});

export const controlWrites = counter({
  name: 'cdp_jobdb_manager_control_writes_total',
  help: 'Destination controls written through the admin API (pause, resume, priority, rate override)',
});
