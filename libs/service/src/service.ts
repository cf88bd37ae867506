import { loadConfigOrExit, type z } from '@cdp/config';
import { startOpsServer, type OpsServer, type ReadinessCheck } from '@cdp/http';
import { Lifecycle } from '@cdp/lifecycle';
import { createLogger, errorFields, type Logger } from '@cdp/log';
import { setBuildInfo } from '@cdp/metrics';
import { packageVersion } from './version';

/**
 * The phases a service's shutdown hooks belong to, run in this order: stop taking work (HTTP
 * listeners, consumers), finish what was taken, flush what producers hold, close the clients.
 * Before them the skeleton marks the process not ready; after them it closes the ops server.
 */
export const SHUTDOWN_PHASES = ['stopInputs', 'drain', 'flushProducers', 'closeClients'] as const;
export type ShutdownPhase = (typeof SHUTDOWN_PHASES)[number];

/** Per phase, named hooks run one after the other in the order written. */
export type ShutdownHooks = Partial<Record<ShutdownPhase, Record<string, () => Promise<void> | void>>>;

/** The part of a service's config the skeleton reads (libs/config baseEnv, and HOST when there is one). */
export interface ServiceConfig {
  OPS_PORT: number;
  LOG_LEVEL: string;
  SHUTDOWN_TIMEOUT_MS: number;
  /** The address the ops server listens on too, when the service has a HOST setting; all addresses otherwise. */
  HOST?: string;
}

export interface ServiceDeps {
  logger: Logger;
  /** Ends the service through its shutdown hooks with exit code 1 (e.g. a consumer that crashed for good). */
  fatal(error: unknown): void;
}

/** What a service's build returns: nothing in it takes work until start(). */
export interface BuiltService {
  /** Opens the inputs (listeners, consumers); resolves to fields for the "<name> started" log line. */
  start(): Promise<Record<string, unknown> | void>;
  /** Cheap checks behind /readyz, which also stays 503 until start() resolved and once shutdown began. */
  readiness: ReadinessCheck[];
  shutdown: ShutdownHooks;
}

export interface ServiceDefinition<C extends ServiceConfig = ServiceConfig, B extends BuiltService = BuiltService> {
  /** The `name` on log lines and the `service` label of cdp_build_info. */
  name: string;
  env: z.ZodType<C>;
  /** Creates the service's clients and parts from its config; may connect, must not take work. */
  build(config: C, deps: ServiceDeps): Promise<B>;
}

/** A service started by startService: what its build returned, its ops server, and its shutdown. */
export interface RunningService<B extends BuiltService> {
  service: B;
  ops: OpsServer;
  /** Runs the shutdown phases once (later calls share the run); resolves to the exit code. */
  stop(): Promise<number>;
}

export interface StartServiceOptions {
  logger: Logger;
  /**
   * main's lifecycle (signals, SHUTDOWN_TIMEOUT_MS, process exit). Without it (a test's process),
   * stop() neither exits nor cuts hooks at a deadline: each runs to its end and closes what it
   * holds (the config's SHUTDOWN_TIMEOUT_MS still sizes what hooks derive from it).
   */
  lifecycle?: Lifecycle;
}

/**
 * Ops server → build → readiness checks and shutdown hooks by phase → start. main.ts reaches it
 * through runMain; tests call it to run a service in their own process with the same wiring.
 * If the start fails, the ops server is closed and the error thrown: the caller decides (main
 * exits 1).
 */
export async function startService<C extends ServiceConfig, B extends BuiltService>(
  definition: ServiceDefinition<C, B>,
  config: C,
  options: StartServiceOptions,
): Promise<RunningService<B>> {
  const { logger } = options;
  const lifecycle = options.lifecycle ?? new Lifecycle({ logger, deadlineMs: 'none', exit: () => undefined });
  let started = false;
  // Up first, so /healthz and /metrics answer during a long start; /readyz waits for the start.
  const ops = await startOpsServer({
    port: config.OPS_PORT,
    host: config.HOST,
    logger,
    checks: [{ name: 'started', check: () => started }],
  });
  try {
    lifecycle.onShutdown('not-ready', () => ops.setDraining());
    const service = await definition.build(config, { logger, fatal: (error) => void lifecycle.shutdown(error) });
    for (const check of service.readiness) ops.addCheck(check);
    for (const phase of SHUTDOWN_PHASES) {
      for (const [name, run] of Object.entries(service.shutdown[phase] ?? {})) lifecycle.onShutdown(`${phase}/${name}`, run);
    }
    lifecycle.onShutdown('ops-server', () => ops.close(1_000));
    const fields = await service.start();
    started = true;
    logger.info({ ...fields, opsPort: ops.port }, `${definition.name} started`);
    return { service, ops, stop: () => lifecycle.shutdown() };
  } catch (error) {
    await ops.close(0).catch(() => undefined);
    throw error;
  }
}

/**
 * A service's whole main: config (invalid → exit 1 naming each variable) → logger → build info
 * (the version of the package.json at or above `packageDir`, main's __dirname) → signal
 * handling → startService. A failed start is fatal: one "<name> failed to start" line with the
 * error, then exit 1, so the pod restarts with the reason in its log.
 */
export function runMain<C extends ServiceConfig, B extends BuiltService>(definition: ServiceDefinition<C, B>, packageDir: string): void {
  const config = loadConfigOrExit(definition.env, definition.name);
  const logger = createLogger({ name: definition.name, level: config.LOG_LEVEL });
  const lifecycle = new Lifecycle({ logger, deadlineMs: config.SHUTDOWN_TIMEOUT_MS });
  lifecycle.installSignalHandlers();
  const start = async () => {
    const version = packageVersion(packageDir);
    setBuildInfo(definition.name, version);
    logger.info({ version }, `${definition.name} starting`);
    await startService(definition, config, { logger, lifecycle });
  };
  start().catch((error: unknown) => {
    logger.fatal(errorFields(error), `${definition.name} failed to start`);
    process.exit(1);
  });
}
