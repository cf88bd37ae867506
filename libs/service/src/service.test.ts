import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { baseEnv, z } from '@cdp/config';
import { createLogger } from '@cdp/log';
import { freePort, waitFor } from '@cdp/testkit';
import { fixtureService } from './fixtures/fixture-service';
import { packageVersion, startService, type ServiceConfig, type ServiceDefinition } from './index';

const logger = createLogger({ name: 'test', level: 'silent' });
const FIXTURE_MAIN = path.join(__dirname, '..', 'dist', 'fixtures', 'fixture-main.js');
const config: ServiceConfig = { OPS_PORT: 0, HOST: '127.0.0.1', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: 5_000 };
const fixtureConfig = (env: Record<string, string>) => fixtureService.env.parse({ OPS_PORT: '0', LOG_LEVEL: 'silent', ...env });

const readyz = async (url: string) => (await fetch(`${url}/readyz`)).status;

interface FixtureRun {
  code: number | null;
  lines: Array<Record<string, unknown>>;
  /** The shutdown hooks the lifecycle ran, in order. */
  hooks: string[];
  /** /readyz and /metrics while it ran (when it got that far). */
  ready?: number;
  metrics?: string;
}

/** Runs the built fixture service (build first) until it exits; SIGTERM once it logged "fixture started". */
function runFixture(env: Record<string, string>): Promise<FixtureRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE_MAIN], {
      env: { PATH: process.env.PATH ?? '', OPS_PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: FixtureRun = { code: null, lines: [], hooks: [] };
    let out = '';
    const onText = (chunk: Buffer) => {
      out += chunk.toString();
      const complete = out.split('\n');
      out = complete.pop() ?? '';
      for (const text of complete) {
        if (text.startsWith('{')) {
          const line = JSON.parse(text) as Record<string, unknown>;
          run.lines.push(line);
          if (line.msg === 'shutdown hook done') run.hooks.push(String(line.hook));
          if (line.msg === 'fixture started') {
            const ops = `http://127.0.0.1:${String(line.opsPort)}`;
            void (async () => {
              run.ready = await readyz(ops);
              run.metrics = await (await fetch(`${ops}/metrics`)).text();
              child.kill('SIGTERM');
            })().catch(reject);
          }
        }
      }
    };
    child.stdout.on('data', onText);
    child.stderr.on('data', onText);
    child.on('error', reject);
    child.on('exit', (code) => resolve({ ...run, code }));
  });
}

describe('runMain (the fixture service as a real process)', () => {
  it('reports the package version, starts, and on SIGTERM runs the hooks phase by phase, exiting 0', async () => {
    const run = await runFixture({});
    const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    expect(run.metrics).toContain(`cdp_build_info{service="fixture",version="${version}"} 1`);
    expect(run.lines.find((l) => l.msg === 'fixture starting')).toMatchObject({ version });
    expect(run.lines.find((l) => l.msg === 'fixture started')).toMatchObject({ answer: 42 });
    expect(run.ready).toBe(200);
    expect(run.hooks).toEqual([
      'not-ready',
      'stopInputs/listener',
      'drain/work',
      'flushProducers/producer',
      'closeClients/client-a',
      'closeClients/client-b',
      'ops-server',
    ]);
    expect(run.code).toBe(0);
  });

  it.each(['build', 'start'])('a failure in %s is fatal: one line naming the error, exit 1', async (step) => {
    const run = await runFixture({ FIXTURE_FAIL: step });
    expect(run.code).toBe(1);
    expect(run.lines.find((l) => l.msg === 'fixture failed to start')).toMatchObject({
      level: 'fatal',
      err: { message: `the fixture cannot ${step}` },
    });
    expect(run.lines.some((l) => l.msg === 'fixture started')).toBe(false);
    expect(run.hooks).toEqual([]);
  });

  it('an invalid config stops it before anything starts, naming the variable', async () => {
    const run = await runFixture({ OPS_PORT: 'ninety' });
    expect(run.code).toBe(1);
    expect(JSON.stringify(run.lines)).toMatch(/fixture cannot start: invalid configuration.*OPS_PORT/);
    expect(run.lines.some((l) => l.msg === 'fixture starting')).toBe(false);
  });
});

describe('startService (in process)', () => {
  /** A service on a known ops port whose start waits for open() and whose drain notes what /readyz said. */
  async function gatedService() {
    const port = await freePort();
    const ops = `http://127.0.0.1:${port}`;
    let open = () => undefined as void;
    const opened = new Promise<void>((r) => (open = r));
    const seen: string[] = [];
    let fatal: (error: unknown) => void = () => undefined;
    const definition: ServiceDefinition = {
      name: 'gated',
      env: z.object(baseEnv),
      build: async (_config, deps) => {
        fatal = deps.fatal;
        return {
          start: () => opened,
          readiness: [],
          shutdown: { drain: { work: async () => void seen.push(`drain with /readyz ${await readyz(ops)}`) } },
        };
      },
    };
    return { definition, config: { ...config, OPS_PORT: port }, ops, open, seen, fatal: (error: unknown) => fatal(error) };
  }

  it('is not ready until started, nor once shutdown began; stop() runs the hooks and closes the ops server', async () => {
    const gated = await gatedService();
    const starting = startService(gated.definition, gated.config, { logger });
    // The ops server is up before the start has finished, and says not ready.
    let status: number | undefined;
    await waitFor(async () => (status = await readyz(gated.ops).catch(() => undefined)) !== undefined);
    gated.open();
    const running = await starting;
    const afterStart = await readyz(gated.ops);
    // Stopped before the assertions, so a failing one leaves no server open.
    const code = await running.stop();
    expect(status).toBe(503);
    expect(afterStart).toBe(200);
    expect(code).toBe(0);
    expect(gated.seen).toEqual(['drain with /readyz 503']);
    await expect(fetch(`${gated.ops}/healthz`)).rejects.toThrow();
  });

  it('a fatal error from the service runs the shutdown with exit code 1', async () => {
    const gated = await gatedService();
    gated.open();
    const running = await startService(gated.definition, gated.config, { logger });
    gated.fatal(new Error('consumer crashed'));
    expect(await running.stop()).toBe(1);
    expect(gated.seen).toEqual(['drain with /readyz 503']);
  });

  it('a failed readiness check keeps /readyz at 503 after the start', async () => {
    const running = await startService(fixtureService, fixtureConfig({ FIXTURE_READY: 'false' }), { logger });
    const body = (await (await fetch(`${running.ops.url}/readyz`)).json()) as { checks: Record<string, { ok: boolean }> };
    expect(body.checks).toEqual({ started: { ok: true }, fixture: { ok: false } });
    await running.stop();
  });

  it('closes its ops server when the build fails', async () => {
    const port = await freePort();
    await expect(
      startService(fixtureService, fixtureConfig({ OPS_PORT: String(port), FIXTURE_FAIL: 'build' }), { logger }),
    ).rejects.toThrow('the fixture cannot build');
    // The port is free again: a second start on it works.
    const running = await startService(fixtureService, fixtureConfig({ OPS_PORT: String(port) }), { logger });
    expect(running.ops.port).toBe(port);
    await running.stop();
  });
});

describe('packageVersion', () => {
  it('reads the nearest package.json at or above the directory, and fails when it has no version', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'service-version-'));
    try {
      fs.mkdirSync(path.join(root, 'svc', 'dist', 'deep'), { recursive: true });
      fs.writeFileSync(path.join(root, 'svc', 'package.json'), JSON.stringify({ name: 'svc', version: '1.2.3' }));
      expect(packageVersion(path.join(root, 'svc', 'dist', 'deep'))).toBe('1.2.3');
      fs.writeFileSync(path.join(root, 'svc', 'dist', 'package.json'), JSON.stringify({ name: 'inner' }));
      expect(() => packageVersion(path.join(root, 'svc', 'dist', 'deep'))).toThrow(/has no version/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
