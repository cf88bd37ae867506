import { counter, gauge, histogram } from '@cdp/metrics';

export const accepted = counter({
  name: 'cdp_dedup_events_accepted_total',
  help: 'First copies published to cdp.deduped',
});
// Labelled by source: the set of sources is bounded by the workspace configuration.
export const duplicates = counter({
  name: 'cdp_dedup_duplicates_total',
  help: 'Copies dropped because the same sourceId:messageId was published inside the window',
  labelNames: ['source'] as const,
});
export const deadLettered = counter({
  name: 'cdp_dedup_dead_lettered_total',
  help: 'Input messages that could not be read (bad key or envelope) and went to the DLQ',
});
export const skippedOnResume = counter({
  name: 'cdp_dedup_resume_skipped_total',
  help: 'Input messages skipped after a takeover because the output or the committed offset already covered them',
});
export const storeKeys = gauge({
  name: 'cdp_dedup_store_keys',
  help: 'Keys in the local stores of the partitions this process owns',
  labelNames: ['partition'] as const,
});
export const bloomBytes = gauge({
  name: 'cdp_dedup_filter_bytes',
  help: 'Memory of the in-memory filters in front of the stores',
  labelNames: ['partition'] as const,
});
export const rebuildDuration = histogram({
  name: 'cdp_dedup_rebuild_duration_seconds',
  help: 'Partition takeover: opening the store, fencing, and repairing it from the output tail',
  buckets: [0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
});
export const repairedKeys = counter({
  name: 'cdp_dedup_repaired_keys_total',
  help: 'Keys added to a store from the output topic during repair',
});
export const purgedKeys = counter({
  name: 'cdp_dedup_purged_keys_total',
  help: 'Keys removed from the stores because they left the window',
});
export const transactionDuration = histogram({
  name: 'cdp_dedup_transaction_duration_seconds',
  help: 'One chunk: publish to cdp.deduped and commit the input offsets in one Kafka transaction',
});
export const fenced = counter({
  name: 'cdp_dedup_fenced_total',
  help: 'Transactions that failed because a newer owner of the partition fenced this producer',
});
