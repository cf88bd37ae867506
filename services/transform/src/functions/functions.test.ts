import type { Envelope } from '@cdp/events';
import { createLogger } from '@cdp/log';
import { parseWorkspace, WorkspaceConfigError } from '@cdp/workspace';
import { dryRun } from '../admin';
import { route } from '../routing';
import { ViolationSamples } from '../violations';
import { FunctionRegistry, functionMetrics } from './functions';
import { loadSandboxEngine } from './sandbox';

let registry: FunctionRegistry;
beforeAll(async () => {
  registry = new FunctionRegistry(await loadSandboxEngine(), {
    disableAfter: 3,
    logger: createLogger({ name: 'functions-test', level: 'silent' }),
  });
});
afterAll(() => registry.close());

// Insert functions as Segment's docs describe them (handlers per type, `settings`, return the
// event, throw its error classes), pasted here unchanged in Segment's shape.
const ENRICH = `
async function onTrack(event, settings) {
  event.properties.environment = settings.environment;
  event.properties.totalWithTax = Math.round(event.properties.total * (1 + settings.taxRate) * 100) / 100;
  return event;
}
async function onIdentify(event, settings) {
  if (!event.traits.email) throw new ValidationError('email is required');
  event.traits.email = event.traits.email.replace(/^(.).*(@.*)$/, '$1***$2');
  return event;
}`;
const DROP_TESTS = `
async function onTrack(event) {
  if (event.event.startsWith('Test ')) return null;
  return event;
}
async function onPage(event) {
  return event;
}`;

const workspaceWith = (functions: { source?: string; connection?: string; settings?: Record<string, unknown> }) =>
  parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        {
          id: 'web',
          name: 'Web',
          spaceId: 'main',
          writeKeys: ['wk'],
          transformations: functions.source
            ? [{ id: 'enrich', type: 'code', code: functions.source, settings: functions.settings ?? {} }]
            : [],
        },
      ],
      destinations: [
        { id: 'hook', name: 'Hook', type: 'webhook', settings: { url: 'http://127.0.0.1:1/hook' } },
        { id: 'audit', name: 'Audit', type: 'webhook', settings: { url: 'http://127.0.0.1:1/audit' } },
      ],
      connections: [
        {
          sourceId: 'web',
          destinationId: 'hook',
          transformations: functions.connection ? [{ type: 'code', code: functions.connection }] : [],
        },
        { sourceId: 'web', destinationId: 'audit' },
      ],
    }),
    { format: 'json', check: registry.check, env: { TAX_SECRET: 's3cr3t-value' } },
  );

const envelope = (message: Record<string, unknown>): Envelope =>
  ({
    v: 1,
    sourceId: 'web',
    messageId: 'm1',
    receivedAt: '2026-12-05T00:00:00Z',
    message: { messageId: 'm1', userId: 'u1', ...message },
  }) as Envelope;

const settings = { environment: 'prod', taxRate: 0.2, apiKey: { $env: 'TAX_SECRET' } };

describe('insert functions in routing', () => {
  it("run Segment-shaped functions unchanged: a source function enriches, a connection's drops test events for its destination only", () => {
    const ws = workspaceWith({ source: ENRICH, connection: DROP_TESTS, settings });
    const run = (message: Record<string, unknown>) => route(envelope(message), ws, { runCode: registry.runner });

    const order = run({ type: 'track', event: 'Order Completed', properties: { total: 10 } });
    expect(order.routes.map((r) => [r.destination.id, r.message.properties])).toEqual([
      ['hook', { total: 10, environment: 'prod', totalWithTax: 12 }],
      ['audit', { total: 10, environment: 'prod', totalWithTax: 12 }],
    ]);
    const test = run({ type: 'track', event: 'Test Order', properties: { total: 1 } });
    expect(test.routes.map((r) => r.destination.id)).toEqual(['audit']);
    expect(test.skipped).toContainEqual(expect.objectContaining({ destinationId: 'hook', reason: 'transformation_drop' }));

    const identify = run({ type: 'identify', traits: { email: 'jane@example.com' } });
    expect(identify.routes[0].message.traits).toEqual({ email: 'j***@example.com' });
    // ValidationError: the event goes nowhere, with the function's message.
    expect(run({ type: 'identify', traits: {} }).dropped).toEqual({
      reason: 'transformation_error',
      detail: 'enrich: rejected: ValidationError: email is required',
    });
    // No onPage in the source function: Segment blocks the type (EventNotSupported).
    expect(run({ type: 'page', name: 'Home' }).dropped?.detail).toMatch(/^enrich: unsupported: EventNotSupported/);
    expect(order.transformationsNotRun).toBe(0);
  });

  it('resolves secret references in settings as the workspace does', () => {
    const code = 'async function onTrack(event, settings) { event.properties.keyLength = settings.apiKey.length; return event }';
    const ws = workspaceWith({ source: code, settings });
    const routing = route(envelope({ type: 'track', event: 'X', properties: {} }), ws, { runCode: registry.runner });
    expect(routing.routes[0].message.properties).toEqual({ keyLength: 's3cr3t-value'.length });
  });

  it('refuses a workspace version whose function does not compile, naming the function', async () => {
    const refused = async () => (await functionMetrics.compileErrors.get()).values.find((v) => v.labels.function === 'enrich')?.value ?? 0;
    const before = await refused();
    expect(() => workspaceWith({ source: 'async function onTrack(event { return event }' })).toThrow(WorkspaceConfigError);
    expect(() => workspaceWith({ source: 'async function onTrack(event { return event }' })).toThrow(
      /sources\[0\]\.transformations\[0\]\.code: insert function enrich does not compile: SyntaxError/,
    );
    expect(() => workspaceWith({ source: 'const x = 1;' })).toThrow(/defines none of onTrack/);
    expect(await refused()).toBe(before + 3);
  });

  it('disables a function that keeps failing: its events are dropped without running it, until its code changes', async () => {
    const looping = 'async function onTrack(event) { if (event.event === "loop") while (true) {} return event }';
    const ws = workspaceWith({ source: looping });
    const run = (event: string) => route(envelope({ type: 'track', event, properties: {} }), ws, { runCode: registry.runner });
    expect(run('fine').routes).toHaveLength(2);
    for (let i = 0; i < 3; i++) expect(run('loop').dropped?.detail).toBe('enrich: failed (timeout): timed out');
    const notRun = async () =>
      (await functionMetrics.invocations.get()).values.find((v) => v.labels.function === 'enrich' && v.labels.outcome === 'disabled')
        ?.value ?? 0;
    const notRunBefore = await notRun();
    expect(run('fine').dropped?.detail).toBe('enrich: disabled after 3 failed calls in a row');
    expect(await notRun()).toBe(notRunBefore + 1);
    expect((await functionMetrics.disabled.get()).values).toContainEqual(
      expect.objectContaining({ labels: { function: 'enrich' }, value: 1 }),
    );
    expect(registry.list()).toContainEqual(expect.objectContaining({ function: 'enrich', disabled: true }));

    // The same function in a new version stays disabled; a changed one starts afresh.
    expect(
      route(envelope({ type: 'track', event: 'fine' }), workspaceWith({ source: looping }), { runCode: registry.runner }).dropped,
    ).toBeDefined();
    const fixed = workspaceWith({ source: looping.replace('while (true) {}', 'return null;') });
    expect(route(envelope({ type: 'track', event: 'fine', properties: {} }), fixed, { runCode: registry.runner }).routes).toHaveLength(2);
    registry.retain(fixed.config);
    expect(registry.list().map((f) => f.disabled)).toEqual([false]);
  });

  it("the dry-run shows each function's outcome, error and console output, and runs a disabled one anyway", () => {
    const code = `async function onTrack(event, settings) {
      console.log('checking', event.event, settings.apiKey);
      if (event.event === 'bad') throw new Error('no total for ' + settings.apiKey);
      return event;
    }`;
    const ws = workspaceWith({ source: code, settings });
    const deps = { workspace: () => ws, samples: new ViolationSamples(), regulation: () => undefined, functions: registry };
    const bad = dryRun({ sourceId: 'web', message: { type: 'track', event: 'bad', userId: 'u1' } }, deps);
    expect(bad.dropped).toEqual({ reason: 'transformation_error', detail: 'enrich: failed (error): Error: no total for [REDACTED]' });
    expect(bad.functions).toEqual([
      {
        function: 'enrich',
        outcome: 'failed',
        reason: 'error',
        error: 'Error: no total for [REDACTED]',
        logs: ['checking bad [REDACTED]'],
        ms: expect.any(Number),
      },
    ]);
    const good = dryRun({ sourceId: 'web', message: { type: 'track', event: 'good', userId: 'u1' } }, deps);
    expect(good.functions).toMatchObject([{ function: 'enrich', outcome: 'returned', logs: ['checking good [REDACTED]'] }]);
    expect(good.jobs).toHaveLength(2);
  });
});
