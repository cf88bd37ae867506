import type { QuickJSWASMModule } from 'quickjs-emscripten-core';
import {
  COMPILE_TIMEOUT_MS,
  DEFAULT_ENGINE_MEMORY_BYTES,
  DEFAULT_LIMITS,
  FunctionCompileError,
  loadSandboxEngine,
  SandboxedFunction,
} from './sandbox';

let engine: QuickJSWASMModule;
beforeAll(async () => {
  engine = await loadSandboxEngine();
});

const track = (extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Order Completed',
  userId: 'u1',
  messageId: 'm1',
  properties: { total: 10 },
  ...extra,
});

const compile = (code: string, settings?: Record<string, unknown>) => SandboxedFunction.compile(engine, { name: 'f', code, settings });

/** Every test ends with a function that still answers: nothing a call did stalls or poisons it. */
function stillWorks(fn: SandboxedFunction): void {
  const after = fn.invoke(track({ event: 'After' }));
  expect(after.outcome).not.toBe('failed');
}

describe('insert functions in the sandbox', () => {
  it('returns the changed event, with settings as the second argument', () => {
    const fn = compile('async function onTrack(event, settings) { event.properties.region = settings.region; return event }', {
      region: 'eu',
    });
    const result = fn.invoke(track());
    expect(result).toMatchObject({ outcome: 'returned', event: { properties: { total: 10, region: 'eu' } } });
    fn.dispose();
  });

  it('Segment semantics: nothing or null drops, DropEvent drops, ValidationError/InvalidEventPayload reject, no handler is unsupported', () => {
    const fn = compile(`
      async function onTrack(event) {
        if (event.event === 'none') return;
        if (event.event === 'null') return null;
        if (event.event === 'drop') throw new DropEvent('not wanted');
        if (event.event === 'invalid') throw new ValidationError('total is required');
        if (event.event === 'payload') throw new InvalidEventPayload('bad');
        if (event.event === 'unsupported') throw new EventNotSupported('no');
        if (event.event === 'retry') throw new RetryError('later');
        if (event.event === 'boom') throw new TypeError('boom');
        return event;
      }`);
    const outcome = (event: string) => fn.invoke(track({ event }));
    expect(outcome('none').outcome).toBe('dropped');
    expect(outcome('null').outcome).toBe('dropped');
    expect(outcome('drop').outcome).toBe('dropped');
    expect(outcome('invalid')).toMatchObject({ outcome: 'rejected', error: 'ValidationError: total is required' });
    expect(outcome('payload').outcome).toBe('rejected');
    expect(outcome('unsupported').outcome).toBe('unsupported');
    expect(outcome('retry').outcome).toBe('retry');
    expect(outcome('boom')).toMatchObject({ outcome: 'failed', reason: 'error', error: 'TypeError: boom' });
    expect(fn.invoke({ type: 'identify', userId: 'u1' })).toMatchObject({
      outcome: 'unsupported',
      error: expect.stringContaining('onIdentify'),
    });
    fn.dispose();
  });

  it('captures console output per call', () => {
    const fn = compile(
      'async function onTrack(event) { console.log("seen", event.event, { n: 1 }); console.error(new Error("x")); return event }',
    );
    expect(fn.invoke(track()).logs).toEqual(['seen Order Completed {"n":1}', 'Error: x']);
    expect(fn.invoke(track()).logs).toHaveLength(2);
    fn.dispose();
  });

  it('refuses code that does not compile, throws at load or defines no handler', () => {
    expect(() => compile('async function onTrack(event {')).toThrow(FunctionCompileError);
    expect(() => compile('throw new Error("at load")')).toThrow('Error: at load');
    expect(() => compile('function handle(event) { return event }')).toThrow(/defines none of onTrack/);
    const started = Date.now();
    expect(() => compile('while (true) {}')).toThrow('timed out');
    expect(Date.now() - started).toBeGreaterThanOrEqual(COMPILE_TIMEOUT_MS);
  });

  it('stops an infinite loop at the time budget, then runs the next call', () => {
    const fn = compile('async function onTrack(event) { if (event.event === "loop") while (true) {} return event }');
    const started = Date.now();
    expect(fn.invoke(track({ event: 'loop' }))).toMatchObject({ outcome: 'failed', reason: 'timeout' });
    expect(Date.now() - started).toBeLessThan(DEFAULT_LIMITS.timeoutMs + 1_000);
    stillWorks(fn);
    fn.dispose();
  });

  it('stops a memory bomb at the memory limit and a runaway recursion at the stack limit', () => {
    const start = process.memoryUsage().rss;
    const fn = compile(`
      async function onTrack(event) {
        if (event.event === 'bomb') { const a = []; while (true) a.push('x'.repeat(1 << 20) + a.length); }
        if (event.event === 'big') { return { ...event, blob: 'x'.repeat(256 * 1024 * 1024) }; }
        if (event.event === 'deep') { const f = (n) => f(n + 1) + 1; f(0); }
        return event;
      }`);
    expect(fn.invoke(track({ event: 'bomb' }))).toMatchObject({ outcome: 'failed', reason: 'memory' });
    stillWorks(fn);
    expect(fn.invoke(track({ event: 'big' }))).toMatchObject({ outcome: 'failed', reason: 'memory' });
    stillWorks(fn);
    expect(fn.invoke(track({ event: 'deep' }))).toMatchObject({ outcome: 'failed', reason: 'stack_overflow' });
    stillWorks(fn);
    // The engine's memory grew to its maximum at most.
    expect(process.memoryUsage().rss - start).toBeLessThan(DEFAULT_ENGINE_MEMORY_BYTES + 50 * 1024 * 1024);
    fn.dispose();
  });

  it('has no process, require, timers or network', () => {
    const fn = compile(`
      async function onTrack(event) {
        if (event.event === 'env') return { ...event, env: process.env };
        if (event.event === 'fs') return { ...event, fs: require('fs').readFileSync('/etc/passwd', 'utf8') };
        if (event.event === 'fetch') { await fetch('http://127.0.0.1:9/'); return event; }
        if (event.event === 'timer') { await new Promise((resolve) => setTimeout(resolve, 1)); return event; }
        if (event.event === 'import') { await import('fs'); return event; }
        if (event.event === 'never') { await new Promise(() => {}); return event; }
        if (event.event === 'host') return { ...event, host: typeof globalThis.process + typeof globalThis.require + typeof globalThis.fetch };
        return event;
      }`);
    expect(fn.invoke(track({ event: 'env' }))).toMatchObject({
      outcome: 'failed',
      reason: 'error',
      error: expect.stringContaining('process'),
    });
    expect(fn.invoke(track({ event: 'fs' }))).toMatchObject({
      outcome: 'failed',
      reason: 'error',
      error: expect.stringContaining('require'),
    });
    expect(fn.invoke(track({ event: 'fetch' }))).toMatchObject({
      outcome: 'failed',
      reason: 'error',
      error: 'Error: fetch is not available: functions run without network access',
    });
    expect(fn.invoke(track({ event: 'timer' }))).toMatchObject({
      outcome: 'failed',
      reason: 'error',
      error: expect.stringContaining('setTimeout'),
    });
    expect(fn.invoke(track({ event: 'import' })).outcome).toBe('failed');
    expect(fn.invoke(track({ event: 'never' }))).toMatchObject({ outcome: 'failed', reason: 'unsettled' });
    expect(fn.invoke(track({ event: 'host' }))).toMatchObject({ outcome: 'returned', event: { host: 'undefinedundefinedfunction' } });
    stillWorks(fn);
    fn.dispose();
  });

  it("prototype pollution stays inside the function's own heap", () => {
    const fn = compile(`
      async function onTrack(event) {
        Object.prototype.polluted = 'yes';
        Array.prototype.push = () => 0;
        JSON.parse = () => ({ type: 'track', hijacked: true });
        return { ...JSON.parse('{}'), ...event, __proto__: { injected: true }, constructor: { prototype: { viaJson: 1 } } };
      }`);
    const result = fn.invoke(track());
    expect(result.outcome).toBe('returned');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).injected).toBeUndefined();
    expect(({} as Record<string, unknown>).viaJson).toBeUndefined();
    const list: number[] = [];
    list.push(1);
    expect(list).toEqual([1]);
    expect(JSON.parse('{"a":1}')).toEqual({ a: 1 });
    // The event came back as plain JSON data: no prototype of its own.
    expect(Object.getPrototypeOf(result.event)).toBe(Object.prototype);
    fn.dispose();
  });

  it('refuses a result that is not an event object', () => {
    const fn = compile(`
      async function onTrack(event) {
        if (event.event === 'string') return 'event';
        if (event.event === 'number') return 42;
        if (event.event === 'array') return [event];
        return event;
      }`);
    for (const kind of ['string', 'number', 'array']) {
      expect(fn.invoke(track({ event: kind }))).toMatchObject({ outcome: 'failed', reason: 'invalid_return' });
    }
    stillWorks(fn);
    fn.dispose();
  });

  it('runs 10,000 calls, with failures among them, within 100 MB of the RSS it started at', () => {
    // 300 ms, not 100: a call descheduled on a loaded machine must not count as a timeout here.
    const fn = SandboxedFunction.compile(
      engine,
      {
        name: 'f',
        code: `
      async function onTrack(event) {
        if (event.properties.n % 5000 === 4999) while (true) {}
        if (event.properties.n % 1000 === 500) throw new Error('every thousandth');
        event.properties.seen = true;
        return event;
      }`,
      },
      { ...DEFAULT_LIMITS, timeoutMs: 300 },
    );
    const start = process.memoryUsage().rss;
    const counts: Record<string, number> = {};
    for (let n = 0; n < 10_000; n++) {
      const { outcome } = fn.invoke(track({ properties: { n, filler: 'y'.repeat(500) } }));
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    }
    expect(counts).toEqual({ returned: 9_988, failed: 12 });
    expect(process.memoryUsage().rss - start).toBeLessThan(100 * 1024 * 1024);
    fn.dispose();
  });
});
