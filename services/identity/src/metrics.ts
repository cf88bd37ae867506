import { counter, histogram, LATENCY_BUCKETS } from '@cdp/metrics';

export const profilesCreated = counter({ name: 'cdp_identity_profiles_created_total', help: 'Profiles created' });
export const mergesDone = counter({ name: 'cdp_identity_merges_total', help: 'Profiles merged into another' });
export const refusals = counter({
  name: 'cdp_identity_refusals_total',
  help: 'Ids dropped or left unmapped by merge protection, by reason (value_limit, merge_cap, mapping_cap)',
  labelNames: ['reason'] as const,
});
export const resolved = counter({
  name: 'cdp_identity_events_total',
  help: 'Events resolved, by outcome (created, attached, merged, known, unresolved: no usable id) and replay (true|false)',
  labelNames: ['outcome', 'replay'] as const,
});
export const cacheLookups = counter({
  name: 'cdp_identity_cache_lookups_total',
  help: 'Read-cache lookups by cache (ids, profiles) and result (hit, miss)',
  labelNames: ['cache', 'result'] as const,
});
export const contention = counter({
  name: 'cdp_identity_contention_retries_total',
  help: 'Resolutions started again after a conditional write lost a race',
});
export const dynamoLatency = histogram({
  name: 'cdp_identity_dynamodb_duration_seconds',
  help: 'DynamoDB calls by operation',
  labelNames: ['op'] as const,
  buckets: LATENCY_BUCKETS,
});
export const dynamoThrottles = counter({
  name: 'cdp_identity_dynamodb_throttles_total',
  help: 'DynamoDB calls throttled, by operation',
  labelNames: ['op'] as const,
});
export const recentEventsStored = counter({
  name: 'cdp_identity_recent_events_stored_total',
  help: 'Events kept for the Profile API (recent events per profile; replays and events past the lookback are not kept)',
});
export const profileApiRequests = counter({
  name: 'cdp_identity_profile_api_requests_total',
  help: 'Profile API requests by route (traits, external_ids, events, metadata, links, merges) and status',
  labelNames: ['route', 'status'] as const,
});
export const suppressedEvents = counter({
  name: 'cdp_identity_suppressed_events_total',
  help: 'Events of users suppressed by a regulation, dropped before resolution',
});
export const regulationsCreated = counter({
  name: 'cdp_identity_regulations_created_total',
  help: 'Regulations created through the Regulations API, by type',
  labelNames: ['type'] as const,
});
export const regulationDeletions = counter({
  name: 'cdp_identity_regulation_deletions_total',
  help: 'Regulated users whose profiles, mappings and events were deleted, by outcome (done, failed)',
  labelNames: ['outcome'] as const,
});
