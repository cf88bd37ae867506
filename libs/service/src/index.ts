export {
  runMain,
  SHUTDOWN_PHASES,
  startService,
  type BuiltService,
  type RunningService,
  type ServiceConfig,
  type ServiceDefinition,
  type ServiceDeps,
  type ShutdownHooks,
  type ShutdownPhase,
  type StartServiceOptions,
} from './service';
export { packageVersion } from './version';
