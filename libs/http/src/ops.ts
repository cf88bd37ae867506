import type { Logger } from '@cdp/log';
import { registry as defaultRegistry, type Registry } from '@cdp/metrics';
import { createApp, finish, listen, type RunningServer } from './app';

export interface ReadinessCheck {
  name: string;
  /** Cheap: no calls to other services of ours; true when the dependency is usable. */
  check: () => Promise<boolean | { ok: boolean; detail?: string }> | boolean;
}

export interface OpsServerOptions {
  port: number;
  host?: string;
  logger: Logger;
  checks?: ReadinessCheck[];
  registry?: Registry;
  checkTimeoutMs?: number;
}

export interface OpsServer extends RunningServer {
  /** Marks the process not ready (e.g. at the start of shutdown), whatever the checks say. */
  setDraining(): void;
  addCheck(check: ReadinessCheck): void;
}

async function runCheck(c: ReadinessCheck, timeoutMs: number): Promise<{ ok: boolean; detail?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<{ ok: boolean; detail: string }>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, detail: `timed out after ${timeoutMs} ms` }), timeoutMs);
    });
    const result = await Promise.race([Promise.resolve().then(c.check), timeout]);
    return typeof result === 'boolean' ? { ok: result } : result;
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The ops listener, on its own port so the public ingress never exposes it:
 * `/healthz` (liveness: the event loop answers), `/readyz` (every check passes),
 * `/metrics` (Prometheus text).
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const checks = [...(options.checks ?? [])];
  const register = options.registry ?? defaultRegistry;
  const timeoutMs = options.checkTimeoutMs ?? 2000;
  let draining = false;
  const app = createApp({ name: 'ops', logger: options.logger });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const results = await Promise.all(checks.map(async (c) => [c.name, await runCheck(c, timeoutMs)] as const));
    const ok = !draining && results.every(([, r]) => r.ok);
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ready' : 'not_ready',
      draining,
      checks: Object.fromEntries(results),
    });
  });
  app.get('/metrics', async (_req, res) => {
    try {
      res.set('Content-Type', register.contentType);
      res.end(await register.metrics());
    } catch (error) {
      res.status(500).end(String((error as Error).message));
    }
  });
  finish(app, options.logger);

  const running = await listen(app, options.port, options.host);
  return {
    ...running,
    setDraining: () => {
      draining = true;
    },
    addCheck: (check) => {
      checks.push(check);
    },
  };
}
