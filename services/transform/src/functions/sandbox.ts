import releaseSync from '@jitl/quickjs-wasmfile-release-sync';
import {
  newQuickJSWASMModuleFromVariant,
  type EmscriptenModuleLoader,
  type QuickJSEmscriptenModule,
  type QuickJSSyncVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core';

/**
 * Runs users' insert functions (Segment's shape: `async function onTrack(event, settings)`, ...)
 * in QuickJS compiled to WebAssembly (quickjs-emscripten): a separate heap, no Node objects, no
 * native build. Each function gets its own runtime (stack limit, an interrupt
 * handler enforcing the time budget) and context, evaluated once. Events and settings cross as
 * JSON text and the result comes back as JSON text, so no host object is ever reachable from
 * inside and nothing the function does to its own prototypes touches the host's. Memory: see
 * loadSandboxEngine.
 *
 * Inside: the ECMAScript built-ins, `console` (captured, at most LOG_LINES lines per call), and
 * Segment's error classes. No `process`, `require`, `import` or timers (undefined: using them
 * throws a ReferenceError); `fetch` exists so code copied from Segment fails with a clear error:
 * it rejects with "fetch is not available: functions run without network access".
 */

export interface SandboxLimits {
  /** Wall-clock budget of one call. */
  timeoutMs: number;
  /** Stack of the function's runtime (deep recursion); kept well under Node's own stack, which the WebAssembly frames share. */
  stackBytes: number;
}

export const DEFAULT_LIMITS: SandboxLimits = { timeoutMs: 100, stackBytes: 256 * 1024 };

/** Budget of evaluating a function's code (its top level), at compile time and when its runtime is rebuilt. */
export const COMPILE_TIMEOUT_MS = 1_000;

/** The WebAssembly memory all functions' heaps share, at most. */
export const DEFAULT_ENGINE_MEMORY_BYTES = 128 * 1024 * 1024;

/** The message types of Segment's spec and the handler each calls. */
export const HANDLERS = {
  track: 'onTrack',
  identify: 'onIdentify',
  page: 'onPage',
  screen: 'onScreen',
  group: 'onGroup',
  alias: 'onAlias',
  delete: 'onDelete',
} as const;

const LOG_LINES = 50;
const LOG_LINE_CHARS = 2_000;

/**
 * What one call did. `returned`: the event to go on with. `dropped`: the handler returned nothing
 * or null, or threw DropEvent. `rejected`: ValidationError or InvalidEventPayload (Segment's
 * "Message Rejected"). `unsupported`: no handler for the type, or EventNotSupported. `retry`:
 * RetryError (not retried here: without network a second run gives the same answer). `failed`:
 * the function broke (reasons below); only these count towards disabling it.
 */
export type InvokeOutcome = 'returned' | 'dropped' | 'rejected' | 'unsupported' | 'retry' | 'failed';

/** Why a call failed: time budget, heap or stack limit, an uncaught error, a result that is not an event object, a promise that can never settle. */
export type FailureReason = 'timeout' | 'memory' | 'stack_overflow' | 'error' | 'invalid_return' | 'unsettled';

export interface InvokeResult {
  outcome: InvokeOutcome;
  /** With `returned`. */
  event?: Record<string, unknown>;
  /** With `failed`. */
  reason?: FailureReason;
  /** The error's name and message (thrown errors, failures). */
  error?: string;
  /** What the call wrote with console.* (at most 50 lines). */
  logs: string[];
  ms: number;
}

/** Thrown by compileFunction: the code does not evaluate, or defines no handler. */
export class FunctionCompileError extends Error {}

// lib ES2022 has no WebAssembly types (they come with DOM); this is the one constructor used.
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => object };

const WASM_PAGE = 65_536;
let engine: { memoryBytes: number; module: Promise<QuickJSWASMModule> } | undefined;

/**
 * The WebAssembly module (one per process, ~25 ms to load); every function's runtime lives in
 * its memory, which is created here with a maximum. That maximum is the memory limit: QuickJS's
 * own per-runtime limit cannot be used, since this build has no malloc_usable_size and counts 8
 * bytes per allocation whatever its size (a 1 MB string passed a 16 MB limit 40 times). At the
 * maximum, malloc fails inside the engine and the function gets QuickJS's "out of memory";
 * its runtime is then thrown away, which gives the memory back to the other functions. Loaded
 * with require: the package's own loader uses a dynamic import(), which jest's CommonJS refuses.
 */
export function loadSandboxEngine(memoryBytes = DEFAULT_ENGINE_MEMORY_BYTES): Promise<QuickJSWASMModule> {
  if (engine) {
    if (engine.memoryBytes !== memoryBytes) throw new Error(`the sandbox engine is already loaded with ${engine.memoryBytes} bytes`);
    return engine.module;
  }
  const wasmMemory = new WebAssembly.Memory({ initial: 256, maximum: Math.max(256, Math.floor(memoryBytes / WASM_PAGE)) });
  const variant: QuickJSSyncVariant = {
    type: 'sync',
    importFFI: releaseSync.importFFI,
    importModuleLoader: async () => {
      const loader = require('@jitl/quickjs-wasmfile-release-sync/emscripten-module') as EmscriptenModuleLoader<QuickJSEmscriptenModule>;
      return (options) => loader({ ...options, wasmMemory });
    },
  };
  engine = { memoryBytes, module: newQuickJSWASMModuleFromVariant(variant) };
  return engine.module;
}

// Evaluated before the user's code: Segment's error classes, a captured console, and the invoker
// the host calls. It keeps its own JSON.parse/stringify so a function that replaces them only
// breaks itself; the host checks whatever comes back anyway.
const PRELUDE = `(() => {
  const define = (name) => {
    const C = class extends Error { constructor(message) { super(message); this.name = name; } };
    Object.defineProperty(C, 'name', { value: name });
    globalThis[name] = C;
  };
  ['EventNotSupported', 'InvalidEventPayload', 'ValidationError', 'RetryError', 'DropEvent'].forEach(define);
  const parse = JSON.parse, stringify = JSON.stringify, slice = String.prototype.slice;
  let logs = [];
  const text = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return v.name + ': ' + v.message;
    try { const s = stringify(v); return s === undefined ? String(v) : s; } catch (e) { return String(v); }
  };
  const log = (...args) => { if (logs.length < ${LOG_LINES}) logs.push(slice.call(args.map(text).join(' '), 0, ${LOG_LINE_CHARS})); };
  globalThis.console = { log, info: log, warn: log, error: log, debug: log };
  globalThis.fetch = async () => { throw new Error('fetch is not available: functions run without network access'); };
  const handlers = ${JSON.stringify(HANDLERS)};
  const codes = { DropEvent: 'dropped', ValidationError: 'rejected', InvalidEventPayload: 'rejected', EventNotSupported: 'unsupported', RetryError: 'retry' };
  const invoke = async (eventJson, settingsJson) => {
    const event = parse(eventJson);
    const name = handlers[event.type];
    const handler = name === undefined ? undefined : globalThis[name];
    if (typeof handler !== 'function') return { code: 'unsupported', error: 'EventNotSupported: no ' + (name || 'handler') + ' for type ' + stringify(event.type) };
    try {
      const result = await handler(event, parse(settingsJson));
      if (result === undefined || result === null) return { code: 'dropped' };
      if (typeof result !== 'object' || Array.isArray(result))
        return { code: 'invalid_return', error: 'returned ' + (Array.isArray(result) ? 'an array' : typeof result) + ', not an event object' };
      return { code: 'returned', json: stringify(result) };
    } catch (error) {
      const errorName = error !== null && typeof error === 'object' && typeof error.name === 'string' ? error.name : 'Error';
      const message = error !== null && typeof error === 'object' && 'message' in error ? String(error.message) : String(error);
      return { code: codes[errorName] || 'error', error: errorName + ': ' + message, name: errorName, message };
    }
  };
  const takeLogs = () => { const out = logs; logs = []; return out; };
  return { invoke, takeLogs, defined: () => Object.values(handlers).filter((h) => typeof globalThis[h] === 'function') };
})()`;

interface Instance {
  runtime: QuickJSRuntime;
  context: QuickJSContext;
  invoke: QuickJSHandle;
  takeLogs: QuickJSHandle;
}

/** A QuickJS error from an evaluation or call, as the host classifies it. */
function classify(dumped: unknown): { reason: FailureReason; error: string } {
  const name = typeof dumped === 'object' && dumped !== null && 'name' in dumped ? String(dumped.name) : 'Error';
  const message = typeof dumped === 'object' && dumped !== null && 'message' in dumped ? String(dumped.message) : String(dumped);
  const error = `${name}: ${message}`;
  if (message === 'interrupted') return { reason: 'timeout', error: 'timed out' };
  if (message === 'out of memory' || dumped === null) return { reason: 'memory', error: 'out of memory' };
  if (message.includes('stack overflow')) return { reason: 'stack_overflow', error };
  return { reason: 'error', error };
}

const FAILURE_CODES = new Set<string>(['invalid_return', 'error']);

/**
 * One insert function, evaluated once. `invoke` is synchronous: with no timers or I/O inside, the
 * handler's promise settles while its pending jobs run, within the same time budget. After a
 * call stopped by the time, memory or stack limit the runtime is rebuilt from the code (its heap
 * may be half-built), so one bad event does not poison the next.
 */
export class SandboxedFunction {
  private instance: Instance;
  private deadline = 0;
  private disposed = false;
  /** The handlers the code defines (`onTrack`, ...). */
  readonly handlers: string[];

  private constructor(
    private readonly module: QuickJSWASMModule,
    readonly name: string,
    private readonly code: string,
    private readonly settingsJson: string,
    readonly limits: SandboxLimits,
  ) {
    const { instance, handlers } = this.evaluate();
    this.instance = instance;
    this.handlers = handlers;
  }

  /** Evaluates the code; throws FunctionCompileError naming what is wrong. */
  static compile(
    module: QuickJSWASMModule,
    spec: { name: string; code: string; settings?: Record<string, unknown> },
    limits: SandboxLimits = DEFAULT_LIMITS,
  ): SandboxedFunction {
    return new SandboxedFunction(module, spec.name, spec.code, JSON.stringify(spec.settings ?? {}), limits);
  }

  private evaluate(): { instance: Instance; handlers: string[] } {
    const runtime = this.module.newRuntime();
    runtime.setMaxStackSize(this.limits.stackBytes);
    runtime.setInterruptHandler(() => Date.now() > this.deadline);
    const context = runtime.newContext();
    const fail = (message: string): never => {
      context.dispose();
      runtime.dispose();
      throw new FunctionCompileError(message);
    };
    // Evaluating runs once per version (and after a stopped call): a cold engine on a busy machine
    // can take longer than one call's budget, which is not the code's fault.
    this.deadline = Date.now() + Math.max(this.limits.timeoutMs, COMPILE_TIMEOUT_MS);
    const prelude = context.evalCode(PRELUDE, 'prelude.js');
    if (prelude.error) {
      const dumped: unknown = context.dump(prelude.error);
      prelude.error.dispose();
      return fail(`sandbox prelude: ${classify(dumped).error}`);
    }
    const api = prelude.value;
    const evaluated = context.evalCode(this.code, `${this.name}.js`);
    if (evaluated.error) {
      const dumped: unknown = context.dump(evaluated.error);
      evaluated.error.dispose();
      api.dispose();
      return fail(classify(dumped).error);
    }
    evaluated.value.dispose();
    const definedFn = context.getProp(api, 'defined');
    const definedResult = context.callFunction(definedFn, context.undefined);
    definedFn.dispose();
    const handlers = definedResult.error ? [] : (context.dump(definedResult.value) as string[]);
    (definedResult.error ?? definedResult.value).dispose();
    if (handlers.length === 0) {
      api.dispose();
      return fail(`defines none of ${Object.values(HANDLERS).join(', ')}`);
    }
    const instance = { runtime, context, invoke: context.getProp(api, 'invoke'), takeLogs: context.getProp(api, 'takeLogs') };
    api.dispose();
    return { instance, handlers };
  }

  /** Runs the handler for the message's type on a copy of it (JSON in, JSON out). */
  invoke(message: Record<string, unknown>): InvokeResult {
    if (this.disposed) throw new Error(`function ${this.name} was disposed`);
    try {
      return this.call(message);
    } catch (error) {
      // A fault of the host side of the engine (not the function's doing): start from a fresh runtime.
      this.disposeInstance();
      this.instance = this.evaluate().instance;
      throw error;
    }
  }

  private call(message: Record<string, unknown>): InvokeResult {
    const started = performance.now();
    const { context, runtime } = this.instance;
    const done = (result: Omit<InvokeResult, 'ms' | 'logs'>, logs: string[]): InvokeResult => ({
      ...result,
      logs,
      ms: performance.now() - started,
    });
    this.deadline = Date.now() + this.limits.timeoutMs;
    const eventArg = context.newString(JSON.stringify(message));
    const settingsArg = context.newString(this.settingsJson);
    const called = context.callFunction(this.instance.invoke, context.undefined, eventArg, settingsArg);
    eventArg.dispose();
    settingsArg.dispose();
    if (called.error) return done(this.broken(called.error), this.reset());
    const promise = called.value;
    // The handler's awaits are pending jobs; with no timers or I/O, running them settles it.
    const jobs = runtime.executePendingJobs();
    if (jobs.error) {
      promise.dispose();
      return done(this.broken(jobs.error), this.reset());
    }
    const state = context.getPromiseState(promise);
    promise.dispose();
    if (state.type === 'pending') {
      return done(
        { outcome: 'failed', reason: 'unsettled', error: 'the handler awaited something that never settles (no timers or network here)' },
        this.reset(),
      );
    }
    if (state.type === 'rejected') return done(this.broken(state.error), this.reset());
    const answer = context.dump(state.value) as { code: string; json?: string; error?: string; name?: string; message?: string };
    state.value.dispose();
    if (answer.code === 'error') {
      // The engine's own stops (time, heap, stack) are catchable in QuickJS: the prelude caught it.
      const failure = classify({ name: answer.name, message: answer.message });
      if (failure.reason !== 'error') return done({ outcome: 'failed', ...failure }, this.reset());
    }
    const logs = this.logs();
    if (answer.code === 'returned') {
      const event: unknown = JSON.parse(answer.json ?? 'null');
      return done({ outcome: 'returned', event: event as Record<string, unknown> }, logs);
    }
    if (FAILURE_CODES.has(answer.code)) {
      return done({ outcome: 'failed', reason: answer.code as FailureReason, ...(answer.error ? { error: answer.error } : {}) }, logs);
    }
    return done({ outcome: answer.code as InvokeOutcome, ...(answer.error ? { error: answer.error } : {}) }, logs);
  }

  /** A call stopped by the engine (interrupted, out of memory, stack): classified, handle released. */
  private broken(handle: QuickJSHandle): Omit<InvokeResult, 'ms' | 'logs'> {
    const dumped: unknown = this.instance.context.dump(handle);
    handle.dispose();
    return { outcome: 'failed', ...classify(dumped) };
  }

  private logs(): string[] {
    this.deadline = Date.now() + this.limits.timeoutMs;
    const taken = this.instance.context.callFunction(this.instance.takeLogs, this.instance.context.undefined);
    if (taken.error) {
      taken.error.dispose();
      return [];
    }
    const logs = this.instance.context.dump(taken.value) as string[];
    taken.value.dispose();
    return logs;
  }

  /** Takes the logs of the broken call, then builds a fresh runtime from the same code. */
  private reset(): string[] {
    const logs = this.logs();
    this.disposeInstance();
    this.instance = this.evaluate().instance;
    return logs;
  }

  private disposeInstance(): void {
    const { invoke, takeLogs, context, runtime } = this.instance;
    for (const disposable of [invoke, takeLogs, context, runtime]) if (disposable.alive) disposable.dispose();
  }

  dispose(): void {
    this.disposed = true;
    this.disposeInstance();
  }
}
