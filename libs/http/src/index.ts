export { createApp, finish, jsonErrors, listen, requestMetrics, type AppOptions, type RunningServer } from './app';
export { errorBody, HttpError } from './errors';
export { startOpsServer, type OpsServer, type OpsServerOptions, type ReadinessCheck } from './ops';
export { Router, type RouteContext, type RouteHandler } from './router';
export { observeRequest } from './metrics';
