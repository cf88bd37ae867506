import crypto from 'node:crypto';
import type { FilterRule } from '@cdp/workspace';
import { cloneJson } from './clone';
import { compileFql, type FqlExpression } from './fql';

/**
 * Segment's destination filters (segment-compat.md §3.6) for one (source, destination): every
 * enabled rule whose `if` matches contributes its actions, applied in Segment's order — sample,
 * drop, drop properties, allow properties. An expression that does not parse or evaluate drops
 * the event (fail closed: a filter often exists to keep PII out).
 */

export type FilterOutcome =
  | { kind: 'keep'; message: Record<string, unknown> }
  | { kind: 'drop'; reason: 'filter_drop' | 'filter_sample' | 'filter_error'; detail?: string };

const compiled = new Map<string, FqlExpression | Error>();
const MAX_COMPILED = 10_000;

/** The compiled expression of `text`, or the syntax error; compiled once per text. */
export function compiledFql(text: string): FqlExpression | Error {
  let entry = compiled.get(text);
  if (entry === undefined) {
    try {
      entry = compileFql(text);
    } catch (error) {
      entry = error instanceof Error ? error : new Error(String(error));
    }
    // Bounded: workspace versions come and go; stale texts are simply compiled again.
    if (compiled.size >= MAX_COMPILED) compiled.clear();
    compiled.set(text, entry);
  }
  return entry;
}

/** True/false, or the error (syntax or evaluation) when the expression cannot decide. */
export function evaluateFql(text: string, message: unknown): boolean | Error {
  const expression = compiledFql(text);
  if (expression instanceof Error) return expression;
  try {
    return expression.matches(message);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** A uniform float in [0, 1) from a value, as Segment's sampler does with a path: the same value, the same draw. */
function uniform(value: unknown): number {
  const digest = crypto
    .createHash('md5')
    .update(JSON.stringify(value ?? null))
    .digest();
  return digest.readUInt32BE(0) / 0x1_0000_0000;
}

function pathValue(message: Record<string, unknown>, path: string): unknown {
  let current: unknown = message;
  for (const key of path.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The objects a `fields` key names: `""` the message itself, else a dotted path into it; a path
 * to a list names each object in it (`properties.products`), as Segment's tsub does.
 */
function targets(message: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const value = key === '' ? message : pathValue(message, key);
  if (Array.isArray(value)) return value.filter(isObject);
  return isObject(value) ? [value] : [];
}

export function applyFilterRules(
  rules: readonly FilterRule[],
  message: Record<string, unknown>,
  random: () => number = Math.random,
): FilterOutcome {
  const actions: FilterRule['actions'][number][] = [];
  for (const rule of rules) {
    if (!rule.enabled) continue;
    const matched = evaluateFql(rule.if, message);
    if (matched instanceof Error) return { kind: 'drop', reason: 'filter_error', detail: `${rule.name}: ${matched.message}` };
    if (matched) actions.push(...rule.actions);
  }
  if (actions.length === 0) return { kind: 'keep', message };
  for (const a of actions) {
    if (a.type !== 'sample') continue;
    const draw = a.path !== undefined ? uniform(pathValue(message, a.path)) : random();
    if (draw >= a.percent / 100) return { kind: 'drop', reason: 'filter_sample' };
  }
  if (actions.some((a) => a.type === 'drop')) return { kind: 'drop', reason: 'filter_drop' };
  const edits = actions.filter((a) => a.type === 'drop_properties' || a.type === 'allow_properties');
  if (edits.length === 0) return { kind: 'keep', message };
  const out = cloneJson(message);
  for (const type of ['drop_properties', 'allow_properties'] as const) {
    for (const a of edits) {
      if (a.type !== type) continue;
      for (const [key, fields] of Object.entries(a.fields)) {
        for (const obj of targets(out, key)) {
          if (type === 'drop_properties') for (const f of fields) delete obj[f];
          else for (const f of Object.keys(obj)) if (!fields.includes(f)) delete obj[f];
        }
      }
    }
  }
  return { kind: 'keep', message: out };
}
