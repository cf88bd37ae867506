import { counter, gauge, histogram } from '@cdp/metrics';

// Labels stay bounded: destination TYPE for per-delivery series; destination id only for
// queue depth, since destinations come from the workspace file (config-bounded, a few hundred
// at most) and an operator needs to see which queue grows.

export const deliveries = counter({
  name: 'cdp_director_deliveries_total',
  help: 'Delivery attempts by destination type and outcome (succeeded, retry, discarded, archived)',
  labelNames: ['destination_type', 'outcome'] as const,
});

export const attemptDuration = histogram({
  name: 'cdp_director_attempt_duration_seconds',
  help: 'Duration of one delivery attempt (HTTP request and response excerpt)',
  labelNames: ['destination_type'] as const,
});

export const queueDepth = gauge({
  name: 'cdp_director_queue_depth',
  help: 'Jobs waiting (first attempts and retries) per configured destination',
  labelNames: ['destination_id'] as const,
});

export const inFlight = gauge({ name: 'cdp_director_in_flight', help: 'Delivery attempts in flight' });

export const jobDbInsertDuration = histogram({
  name: 'cdp_director_jobdb_insert_duration_seconds',
  help: 'Fenced job insert transaction duration (one RPC batch)',
});

export const jobDbTransitionDuration = histogram({
  name: 'cdp_director_jobdb_transition_write_duration_seconds',
  help: 'Fenced transition write transaction duration (one group commit)',
});

export const jobDbTransitionBatch = histogram({
  name: 'cdp_director_jobdb_transition_batch_rows',
  help: 'Transitions per write transaction',
  buckets: [1, 5, 10, 50, 100, 500, 1000, 2000, 5000],
});

export const jobDbsHeld = gauge({
  name: 'cdp_director_jobdbs_held',
  help: 'JobDBs whose lock this director holds, by state',
  labelNames: ['state'] as const,
});

export const startedWithInsert = counter({
  name: 'cdp_director_jobs_started_with_insert_total',
  help: 'New jobs whose first attempt started at once, their executing row committed with the insert',
});

export const rpcJobs = counter({
  name: 'cdp_director_rpc_jobs_total',
  help: 'Jobs received over RPC by result (stored, duplicate, rejected: unknown destination, header not allowed, or the JobDB cannot store it)',
  labelNames: ['result'] as const,
});

let schedulerQueueCount: () => number = () => 0;

/** Where `cdp_director_scheduler_queues` reads its value at scrape time (the engine's scheduler). */
export function countSchedulerQueuesWith(count: () => number): void {
  schedulerQueueCount = count;
}

export const schedulerQueues = gauge({
  name: 'cdp_director_scheduler_queues',
  help: 'Destination queues held by the scheduler (one per destination that had jobs in this director)',
  collect() {
    this.set(schedulerQueueCount());
  },
});

export const rpcUnauthorized = counter({
  name: 'cdp_director_rpc_unauthorized_total',
  help: 'RPC calls refused with 401: no or a wrong DIRECTOR_RPC_TOKEN',
});

export const undeliveredPublished = counter({
  name: 'cdp_director_undelivered_total',
  help: 'Expired jobs published to cdp.undelivered',
});

export const fencedWrites = counter({
  name: 'cdp_director_fenced_writes_total',
  help: 'JobDB writes refused because a newer lease exists',
});

export const abortedCalls = counter({
  name: 'cdp_director_aborted_calls_total',
  help: 'Destination calls aborted in flight because their JobDB lock was lost or released',
});

export const staleLeases = counter({
  name: 'cdp_director_stale_leases_total',
  help: 'JobDBs not taken after acquiring their lock: the latest lease has a fencing token at or above this acquisition',
});

export const lockLosses = counter({
  name: 'cdp_director_lock_losses_total',
  help: 'JobDB locks lost (session lost, key deleted or taken)',
  labelNames: ['reason'] as const,
});

export const circuitOpen = gauge({
  name: 'cdp_director_circuits_open',
  help: 'Destinations whose circuit breaker is open or half-open',
});

export const jobDbsRefused = counter({
  name: 'cdp_director_jobdbs_refused_total',
  help: 'JobDBs this director refused to take, counted once per JobDB and reason (schema_version: a schema it does not know; memory_budget: the metadata of its open jobs does not fit DIRECTOR_MAX_QUEUED_BYTES)',
  labelNames: ['reason'] as const,
});

export const queuedBytes = gauge({
  name: 'cdp_director_queued_bytes',
  help: 'Estimated memory of the jobs held (metadata: every held job; content: payloads, headers and texts kept in memory) and the budget (limit: DIRECTOR_MAX_QUEUED_BYTES)',
  labelNames: ['kind'] as const,
});

export const contentReads = counter({
  name: 'cdp_director_job_content_reads_total',
  help: 'Job contents read back from the JobDB when the job was due (the memory budget had not kept them)',
});
