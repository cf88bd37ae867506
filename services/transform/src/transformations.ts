import type { Transformation } from '@cdp/workspace';
import { cloneJson } from './clone';
import { evaluateFql } from './filters';

/**
 * A source's declarative transformations (libs/workspace `transformations`), applied in order to
 * a copy of the message before routing and filters: rename an event, rename or drop properties,
 * drop the event when an FQL condition matches, and `code` (an insert function, run by the
 * `CodeRunner` given: src/functions; without one the event passes it unchanged, reported in
 * `notRun`). Used for a source's transformations and, per destination, for a connection's.
 */
/** A `code` transformation of the workspace. */
export type CodeTransformation = Extract<Transformation, { type: 'code' }>;

/**
 * Runs one `code` transformation on a message it may change in place (a copy already): the
 * message to go on with, `null` to drop the event, or an error (the event is dropped, fail
 * closed). Without a runner, `code` transformations are passed and counted as not run.
 */
export type CodeRunner = (transformation: CodeTransformation, message: Record<string, unknown>) => Record<string, unknown> | null | Error;

export type TransformationOutcome =
  | { kind: 'keep'; message: Record<string, unknown>; notRun: number }
  | { kind: 'drop'; reason: 'transformation_drop' | 'transformation_error'; detail?: string };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deletes a dotted path from the message root (`properties.email`, `context.ip`). */
function deletePath(message: Record<string, unknown>, path: string): void {
  const keys = path.split('.');
  let current: unknown = message;
  for (const key of keys.slice(0, -1)) {
    if (!isObject(current)) return;
    current = current[key];
  }
  if (isObject(current)) delete current[keys[keys.length - 1]];
}

/** Whether a transformation limited to one track event (`event`) applies to this message. */
function forEvent(event: string | undefined, message: Record<string, unknown>): boolean {
  return event === undefined || (message.type === 'track' && message.event === event);
}

export function applyTransformations(
  transformations: readonly Transformation[],
  input: Record<string, unknown>,
  runCode?: CodeRunner,
): TransformationOutcome {
  const active = transformations.filter((t) => t.enabled);
  if (active.length === 0) return { kind: 'keep', message: input, notRun: 0 };
  let message = cloneJson(input);
  let notRun = 0;
  for (const t of active) {
    switch (t.type) {
      case 'rename_event':
        if (message.type === 'track' && message.event === t.from) message.event = t.to;
        break;
      case 'rename_properties': {
        if (!forEvent(t.event, message)) break;
        // Traits for identify and group, properties for the others.
        const container = message[message.type === 'identify' || message.type === 'group' ? 'traits' : 'properties'];
        if (!isObject(container)) break;
        for (const [from, to] of Object.entries(t.properties)) {
          if (!Object.hasOwn(container, from)) continue;
          container[to] = container[from];
          delete container[from];
        }
        break;
      }
      case 'drop_properties':
        if (forEvent(t.event, message)) for (const path of t.properties) deletePath(message, path);
        break;
      case 'drop_event': {
        const matched = evaluateFql(t.if, message);
        // A condition that cannot be evaluated drops the event, as filters do (fail closed).
        if (matched instanceof Error)
          return { kind: 'drop', reason: 'transformation_error', detail: `${t.id ?? t.name ?? 'drop_event'}: ${matched.message}` };
        if (matched) return { kind: 'drop', reason: 'transformation_drop' };
        break;
      }
      case 'code': {
        if (!runCode) {
          notRun++;
          break;
        }
        const result = runCode(t, message);
        if (result instanceof Error)
          return { kind: 'drop', reason: 'transformation_error', detail: `${t.id ?? t.name ?? 'code'}: ${result.message}` };
        if (result === null) return { kind: 'drop', reason: 'transformation_drop' };
        message = result;
        break;
      }
    }
  }
  return { kind: 'keep', message, notRun };
}
