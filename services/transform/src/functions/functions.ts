import { createHash } from 'node:crypto';
import { redactText, type Logger } from '@cdp/log';
import { counter, gauge, histogram } from '@cdp/metrics';
import type { ConfigIssue, PathSegment, Transformation, WorkspaceConfig } from '@cdp/workspace';
import type { QuickJSWASMModule } from 'quickjs-emscripten-core';
import type { CodeRunner, CodeTransformation } from '../transformations';
import { DEFAULT_LIMITS, FunctionCompileError, SandboxedFunction, type InvokeResult, type SandboxLimits } from './sandbox';

export const functionMetrics = {
  invocations: counter({
    name: 'cdp_transform_function_invocations_total',
    help: 'Insert-function calls, by function and outcome: returned, dropped (nothing, null or DropEvent), rejected (ValidationError, InvalidEventPayload), unsupported (no handler, EventNotSupported), retry (RetryError), failed, disabled (not run)',
    labelNames: ['function', 'outcome'] as const,
  }),
  duration: histogram({
    name: 'cdp_transform_function_duration_seconds',
    help: 'Time of one insert-function call, JSON in and out included',
    labelNames: ['function'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  }),
  failures: counter({
    name: 'cdp_transform_function_failures_total',
    help: 'Failed insert-function calls (the event is dropped), by function and reason: timeout, memory, stack_overflow, error, invalid_return, unsettled',
    labelNames: ['function', 'reason'] as const,
  }),
  disabled: gauge({
    name: 'cdp_transform_function_disabled',
    help: '1 for an insert function disabled after failing TRANSFORM_FUNCTION_DISABLE_AFTER calls in a row (its events are dropped until its code or settings change)',
    labelNames: ['function'] as const,
  }),
  compileErrors: counter({
    name: 'cdp_transform_function_compile_errors_total',
    help: 'Insert functions refused at a workspace reload because they do not compile (the previous workspace version stays)',
    labelNames: ['function'] as const,
  }),
};

export interface FunctionsOptions {
  limits?: SandboxLimits;
  /** Failed calls in a row after which a function is disabled. */
  disableAfter: number;
  logger: Logger;
}

/** One function of one workspace position, with its state across calls. */
interface Slot {
  label: string;
  fn: SandboxedFunction;
  failuresInARow: number;
  disabled: boolean;
}

/** What the dry-run shows of one call. */
export interface FunctionTrace {
  function: string;
  outcome: InvokeResult['outcome'] | 'disabled';
  reason?: string;
  error?: string;
  logs: string[];
  ms: number;
  /** The function is disabled in the stream; the dry-run ran it anyway. */
  disabled?: boolean;
}

/** The `code` transformations of a config, each with the path it sits at. */
function codeTransformations(config: WorkspaceConfig): { t: CodeTransformation; path: PathSegment[]; where: string }[] {
  const found: { t: CodeTransformation; path: PathSegment[]; where: string }[] = [];
  const collect = (list: readonly Transformation[], path: PathSegment[], where: string) =>
    list.forEach((t, i) => {
      if (t.type === 'code' && t.enabled) found.push({ t, path: [...path, 'transformations', i], where: `${where}.transformations[${i}]` });
    });
  config.sources.forEach((s, i) => collect(s.transformations, ['sources', i], `sources.${s.id}`));
  config.connections.forEach((c, i) =>
    collect(c.transformations ?? [], ['connections', i], `connections.${c.sourceId}->${c.destinationId}`),
  );
  return found;
}

/** The metric label and log name of a function: its id, else its name, else where it sits. */
function labelOf(t: CodeTransformation, where: string): string {
  return t.id ?? t.name ?? where;
}

/**
 * Users' insert functions (`code` transformations) for the workspace versions in force: each is
 * compiled in the sandbox when a version is loaded (the store's `check`: a function that does not
 * compile refuses the version), then run by `runner` for every event. A function identical in a
 * new version (same label, code and settings) keeps its compiled instance and its state,
 * including being disabled; a changed one starts afresh.
 */
export class FunctionRegistry {
  private readonly slots = new Map<string, Slot>();
  private readonly byTransformation = new WeakMap<CodeTransformation, Slot>();
  private readonly limits: SandboxLimits;

  constructor(
    private readonly engine: QuickJSWASMModule,
    private readonly options: FunctionsOptions,
  ) {
    this.limits = options.limits ?? DEFAULT_LIMITS;
  }

  /** For WorkspaceStore's `check`: compiles the version's functions; an issue per function that does not compile. */
  readonly check = (config: WorkspaceConfig): ConfigIssue[] => {
    const issues: ConfigIssue[] = [];
    for (const { t, path, where } of codeTransformations(config)) {
      const label = labelOf(t, where);
      const key = createHash('sha256')
        .update(JSON.stringify([label, t.code, t.settings]))
        .digest('hex');
      let slot = this.slots.get(key);
      if (!slot) {
        try {
          slot = {
            label,
            fn: SandboxedFunction.compile(this.engine, { name: label, code: t.code, settings: t.settings }, this.limits),
            failuresInARow: 0,
            disabled: false,
          };
        } catch (error) {
          if (!(error instanceof FunctionCompileError)) throw error;
          functionMetrics.compileErrors.labels(label).inc();
          this.options.logger.error({ function: label, error: error.message }, `insert function ${label} does not compile`);
          issues.push({ path: [...path, 'code'], message: `insert function ${label} does not compile: ${error.message}` });
          continue;
        }
        this.slots.set(key, slot);
        functionMetrics.disabled.labels(label).set(0);
      }
      this.byTransformation.set(t, slot);
    }
    return issues;
  };

  /** After a version was applied or refused: frees the functions the version in force does not use. */
  retain(config: WorkspaceConfig): void {
    const used = new Set(codeTransformations(config).map(({ t }) => this.byTransformation.get(t)));
    for (const [key, slot] of this.slots) {
      if (used.has(slot)) continue;
      slot.fn.dispose();
      this.slots.delete(key);
      functionMetrics.disabled.remove(slot.label);
    }
  }

  /** Runs the function in the stream: counted, timed, disabled after too many failures in a row. */
  readonly runner: CodeRunner = (t, message) => {
    const slot = this.byTransformation.get(t);
    if (!slot) return new Error('not compiled (a workspace version this process did not load)');
    if (slot.disabled) {
      functionMetrics.invocations.labels(slot.label, 'disabled').inc();
      return new Error(`disabled after ${this.options.disableAfter} failed calls in a row`);
    }
    const result = invokeSafely(slot.fn, message);
    functionMetrics.invocations.labels(slot.label, result.outcome).inc();
    functionMetrics.duration.labels(slot.label).observe(result.ms / 1000);
    if (result.outcome !== 'failed') {
      slot.failuresInARow = 0;
      return answer(result);
    }
    functionMetrics.failures.labels(slot.label, result.reason ?? 'error').inc();
    if (++slot.failuresInARow >= this.options.disableAfter) {
      slot.disabled = true;
      functionMetrics.disabled.labels(slot.label).set(1);
      this.options.logger.error(
        { function: slot.label, failures: slot.failuresInARow, reason: result.reason, error: result.error },
        `insert function ${slot.label} disabled after ${slot.failuresInARow} failed calls in a row: its events are dropped until its code or settings change`,
      );
    }
    return answer(result);
  };

  /** Runs functions for the admin dry-run: nothing counted, disabled ones run too, every call traced with its logs. */
  dryRunner(trace: FunctionTrace[]): CodeRunner {
    return (t, message) => {
      const slot = this.byTransformation.get(t);
      if (!slot) return new Error('not compiled (a workspace version this process did not load)');
      const result = invokeSafely(slot.fn, message);
      trace.push({
        function: slot.label,
        outcome: result.outcome,
        ...(result.reason ? { reason: result.reason } : {}),
        ...(result.error ? { error: redactText(result.error) } : {}),
        logs: result.logs.map(redactText),
        ms: Math.round(result.ms * 1000) / 1000,
        ...(slot.disabled ? { disabled: true } : {}),
      });
      return answer(result);
    };
  }

  /** The functions loaded and their state, for the admin config view. */
  list(): { function: string; handlers: string[]; disabled: boolean; failuresInARow: number }[] {
    return [...this.slots.values()].map((s) => ({
      function: s.label,
      handlers: s.fn.handlers,
      disabled: s.disabled,
      failuresInARow: s.failuresInARow,
    }));
  }

  close(): void {
    for (const slot of this.slots.values()) slot.fn.dispose();
    this.slots.clear();
  }
}

/** A call that threw on the host side (an engine fault) counts as a failed call, never stops the stream. */
function invokeSafely(fn: SandboxedFunction, message: Record<string, unknown>): InvokeResult {
  const started = performance.now();
  try {
    return fn.invoke(message);
  } catch (error) {
    return { outcome: 'failed', reason: 'error', error: `sandbox: ${String(error)}`, logs: [], ms: performance.now() - started };
  }
}

/** The CodeRunner's answer: the event, null (dropped on purpose), or the reason as an Error (fail closed). */
function answer(result: InvokeResult): Record<string, unknown> | null | Error {
  if (result.outcome === 'returned') return result.event!;
  if (result.outcome === 'dropped') return null;
  const what = result.outcome === 'failed' ? `failed (${result.reason})` : result.outcome;
  // Redacted: a function may put a resolved secret of its settings into its error.
  return new Error(redactText(result.error ? `${what}: ${result.error}` : what));
}
