import type { Logger } from '@cdp/log';
import { errorFields } from '@cdp/log';

export interface ShutdownHook {
  name: string;
  run: () => Promise<void> | void;
}

export interface LifecycleOptions {
  logger: Logger;
  /**
   * The whole shutdown must finish within this; a hung hook is cut, later ones are skipped and
   * the exit code is 1. 'none' (a service run inside a test's process, which does not exit):
   * every hook runs to its end, since a skipped one would leave its resources open.
   */
  deadlineMs: number | 'none';
  /** Replaced in tests; process.exit in services. */
  exit?: (code: number) => void;
}

/**
 * Ordered, named shutdown hooks run on SIGTERM/SIGINT, each awaited before the next (stop
 * accepting → drain → commit → release locks → close clients). The deadline covers the whole
 * sequence; an unhandled rejection or uncaught exception is logged and fatal (exit 1 after the
 * hooks), since continuing in an unknown state risks losing or duplicating events.
 */
export class Lifecycle {
  private readonly hooks: ShutdownHook[] = [];
  private stopping: Promise<number> | undefined;
  private readonly exit: (code: number) => void;
  private readonly listeners: Array<[string, (...args: unknown[]) => void]> = [];

  constructor(private readonly options: LifecycleOptions) {
    this.exit = options.exit ?? ((code) => process.exit(code));
  }

  /** Hooks run in registration order. Register the entry points (HTTP, consumers) first. */
  onShutdown(name: string, run: ShutdownHook['run']): void {
    if (this.hooks.some((h) => h.name === name)) throw new Error(`shutdown hook "${name}" registered twice`);
    this.hooks.push({ name, run });
  }

  get isStopping(): boolean {
    return this.stopping !== undefined;
  }

  installSignalHandlers(): void {
    const on = (event: string, handler: (...args: unknown[]) => void) => {
      process.on(event, handler);
      this.listeners.push([event, handler]);
    };
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      on(signal, () => {
        this.options.logger.info({ signal }, 'shutdown requested');
        void this.shutdown();
      });
    }
    on('unhandledRejection', (reason) => {
      this.options.logger.fatal(errorFields(reason), 'unhandled promise rejection');
      void this.shutdown(reason);
    });
    on('uncaughtException', (error) => {
      this.options.logger.fatal(errorFields(error), 'uncaught exception');
      void this.shutdown(error);
    });
  }

  /** Runs the hooks once (later calls share the first run) and exits. Resolves to the exit code. */
  shutdown(cause?: unknown): Promise<number> {
    this.stopping ??= this.runHooks(cause).then((code) => {
      for (const [event, handler] of this.listeners) process.off(event, handler);
      this.exit(code);
      return code;
    });
    return this.stopping;
  }

  private async runHooks(cause: unknown): Promise<number> {
    const { logger, deadlineMs } = this.options;
    const deadline = deadlineMs === 'none' ? undefined : Date.now() + deadlineMs;
    let code = cause === undefined ? 0 : 1;
    for (const hook of this.hooks) {
      const remaining = deadline === undefined ? undefined : deadline - Date.now();
      if (remaining !== undefined && remaining <= 0) {
        logger.error({ hook: hook.name }, 'shutdown deadline passed; skipping hook');
        code = 1;
        continue;
      }
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        if (remaining !== undefined) timer = setTimeout(() => resolve('timeout'), remaining);
      });
      try {
        const outcome = await Promise.race([
          Promise.resolve()
            .then(hook.run)
            .then(() => 'done' as const),
          timeout,
        ]);
        if (outcome === 'timeout') {
          logger.error({ hook: hook.name, deadlineMs }, 'shutdown hook cut at the deadline');
          code = 1;
        } else {
          logger.info({ hook: hook.name, durationMs: Date.now() - started }, 'shutdown hook done');
        }
      } catch (error) {
        logger.error({ hook: hook.name, ...errorFields(error) }, 'shutdown hook failed');
        code = 1;
      } finally {
        clearTimeout(timer);
      }
    }
    logger.info({ code }, 'shutdown complete');
    return code;
  }
}

export { sleep } from './sleep';
