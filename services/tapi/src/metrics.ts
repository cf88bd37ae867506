import { counter, gauge, histogram } from '@cdp/metrics';

// Labels are bounded: endpoint names and reasons are fixed sets, sourceId is bounded by the
// workspace config. Never writeKey, userId or messageId.

export const requestsTotal = counter({
  name: 'cdp_tapi_requests_total',
  help: 'Tracking API requests by endpoint and HTTP status',
  labelNames: ['endpoint', 'status'] as const,
});

export const eventsAccepted = counter({
  name: 'cdp_tapi_events_accepted_total',
  help: 'Events acknowledged to the client, by source and where they were stored (kafka cluster or spool)',
  labelNames: ['source', 'stored'] as const,
});

export const eventsDropped = counter({
  name: 'cdp_tapi_events_dropped_total',
  help: 'Events answered but not published, by reason',
  labelNames: ['reason'] as const,
});

export const requestsRejected = counter({
  name: 'cdp_tapi_requests_rejected_total',
  help: 'Requests answered with an error (400 reasons, rate_limited, spool_full)',
  labelNames: ['reason'] as const,
});

export const bytesIn = counter({
  name: 'cdp_tapi_request_bytes_total',
  help: 'Request body bytes received, as sent on the wire and after decoding',
  labelNames: ['stage'] as const,
});

export const publishDuration = histogram({
  name: 'cdp_tapi_publish_duration_seconds',
  help: 'Time from publish start to durable storage (Kafka ack or spool fsync), by target',
  labelNames: ['target'] as const,
});

export const publishFailures = counter({
  name: 'cdp_tapi_publish_failures_total',
  help: 'Publishes to a Kafka cluster that failed or timed out (the events went elsewhere)',
  labelNames: ['cluster'] as const,
});

export const spoolDepth = gauge({
  name: 'cdp_tapi_spool_depth_messages',
  help: 'Events waiting in the local spool',
});

export const spoolBytes = gauge({
  name: 'cdp_tapi_spool_bytes',
  help: 'Approximate bytes of events waiting in the local spool',
});

export const spoolDrained = counter({
  name: 'cdp_tapi_spool_drained_total',
  help: 'Spooled events republished to Kafka and deleted from the spool',
});

export const spoolParked = counter({
  name: 'cdp_tapi_spool_parked_records_total',
  help: 'Spooled records Kafka refused for good, moved to <SPOOL_DIR>/parked, by Kafka error type',
  labelNames: ['reason'] as const,
});

/** The folder the parked gauges report, read at each scrape (the spool commands change it too). */
let parkedSource: (() => { records: number; bytes: number }) | undefined;
export function setParkedSource(source: () => { records: number; bytes: number }): void {
  parkedSource = source;
}

gauge({
  name: 'cdp_tapi_spool_parked_records',
  help: 'Records in <SPOOL_DIR>/parked (refused by Kafka, waiting for an operator)',
  collect() {
    if (parkedSource) this.set(parkedSource().records);
  },
});

gauge({
  name: 'cdp_tapi_spool_parked_bytes',
  help: 'Bytes of the files in <SPOOL_DIR>/parked',
  collect() {
    if (parkedSource) this.set(parkedSource().bytes);
  },
});

export const activeCluster = gauge({
  name: 'cdp_tapi_active_cluster',
  help: '1 for the Kafka cluster new events go to (primary or secondary), 0 otherwise',
  labelNames: ['cluster'] as const,
});

export const clusterSwitches = counter({
  name: 'cdp_tapi_cluster_switches_total',
  help: 'Switches of the active Kafka cluster, by destination cluster and cause',
  labelNames: ['to', 'cause'] as const,
});

export const suppressedUsers = gauge({
  name: 'cdp_tapi_suppressed_users',
  help: 'Users in the suppression set (from cdp.regulations)',
});

export const suppressionBytes = gauge({
  name: 'cdp_tapi_suppression_set_bytes',
  help: 'Memory held by the suppression set tables',
});
