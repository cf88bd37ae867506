import { counter, gauge } from '@cdp/metrics';

/** transform's own metrics; the RPC's latency and retries are the client's (cdp_director_rpc_client_*). */
export const transformMetrics = {
  events: counter({
    name: 'cdp_transform_events_total',
    help: 'Events read from cdp.identified, by outcome: routed (≥ 1 job), no_route (no destination took it)',
    labelNames: ['outcome'] as const,
  }),
  jobs: counter({
    name: 'cdp_transform_jobs_total',
    help: "Jobs sent to the directors, by destination and the director's answer (stored, duplicate, rejected)",
    labelNames: ['destination', 'status'] as const,
  }),
  skipped: counter({
    name: 'cdp_transform_skipped_total',
    help: 'Destinations or subscriptions an event did not go to, or whole events dropped, by reason (integrations, replay, filter_drop, transformation_drop, regulated, plan_violation, ...)',
    labelNames: ['reason'] as const,
  }),
  codeNotRun: counter({
    name: 'cdp_transform_code_transformations_not_run_total',
    help: '`code` transformations events passed without being run (no code runner)',
  }),
  violations: counter({
    name: 'cdp_transform_plan_violations_total',
    help: 'Tracking-plan violations, by source, event (planned name, (unplanned), (identify), ...) and rule (unplanned_event, unplanned_property, minimum:properties.total, ...)',
    labelNames: ['source', 'event', 'rule'] as const,
  }),
  unavailable: counter({
    name: 'cdp_transform_directors_unavailable_total',
    help: 'Chunks whose jobs no director took (503, connection errors, timeouts after every attempt); the chunk is retried',
  }),
  directorsAccepting: gauge({
    name: 'cdp_transform_directors_accepting',
    help: '1 when the last send of jobs was taken by the directors, 0 while none takes them',
  }),
};
