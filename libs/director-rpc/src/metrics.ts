import { counter, gauge, histogram } from '@cdp/metrics';

// Created on first use: the director imports this lib for the contract and must not export
// the client's series.
let created: ReturnType<typeof create> | undefined;

export function clientMetrics(): ReturnType<typeof create> {
  created ??= create();
  return created;
}

function create() {
  return {
    rpcRequests: counter({
      name: 'cdp_director_rpc_client_requests_total',
      help: 'POST /v1/jobs calls by outcome: ok, unavailable (503), connection_error, timeout, refused (400/401/413 and other answers not retried)',
      labelNames: ['outcome'] as const,
    }),
    rpcRetries: counter({
      name: 'cdp_director_rpc_client_retries_total',
      help: 'Batch attempts after the first (to another director when there is one) following a 503, a connection error or a timeout',
    }),
    rpcDuration: histogram({
      name: 'cdp_director_rpc_client_request_duration_seconds',
      help: 'Duration of one POST /v1/jobs call by outcome',
      labelNames: ['outcome'] as const,
    }),
    rpcJobResults: counter({
      name: 'cdp_director_rpc_client_jobs_total',
      help: 'Jobs answered by directors, by per-job status (stored, duplicate, rejected)',
      labelNames: ['status'] as const,
    }),
    directorsKnown: gauge({
      name: 'cdp_director_rpc_client_directors',
      help: 'Directors the client currently knows (URL list or last good DNS answer)',
    }),
    discoveryRefreshes: counter({
      name: 'cdp_director_rpc_client_dns_refreshes_total',
      help: 'DNS resolutions of DIRECTOR_RPC_SERVICE by outcome (ok, empty, failed; the last two keep the previous set)',
      labelNames: ['outcome'] as const,
    }),
  };
}
