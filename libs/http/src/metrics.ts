import { counter, histogram } from '@cdp/metrics';

const requests = counter({
  name: 'cdp_http_requests_total',
  help: 'HTTP requests served, by route pattern, method and status class',
  labelNames: ['server', 'route', 'method', 'status_class'] as const,
});
const duration = histogram({
  name: 'cdp_http_request_duration_seconds',
  help: 'HTTP request duration from first byte to response finish',
  labelNames: ['server', 'route', 'method'] as const,
});

/** Counts one finished request under its route *pattern* (bounded), never the raw URL. */
export function observeRequest(server: string, route: string, method: string, status: number, seconds: number): void {
  requests.labels(server, route, method, `${Math.floor(status / 100)}xx`).inc();
  duration.labels(server, route, method).observe(seconds);
}

export const unauthorized = counter({
  name: 'cdp_http_unauthorized_total',
  help: 'Requests refused with 401 (no or a wrong token), by server',
  labelNames: ['server'] as const,
});
