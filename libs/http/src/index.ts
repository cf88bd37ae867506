export {
  createAdminApp,
  redactedQuery,
  requestLog,
  startAdminServer,
  type AdminAppOptions,
  type AdminServerOptions,
  type StaticAssets,
} from './admin';
export { createApp, finish, jsonErrors, listen, requestMetrics, type AppOptions, type RunningServer } from './app';
export { presentedToken, requireToken, secretMatcher } from './auth';
export { errorBody, HttpError } from './errors';
export { startOpsServer, type OpsServer, type OpsServerOptions, type ReadinessCheck } from './ops';
export { decodeCursor, encodeCursor, pageCursor, pageRequest, takePage, type Cursor, type PageLimits, type PageRequest } from './paging';
export { Router, type RouteContext, type RouteHandler } from './router';
export { observeRequest } from './metrics';
