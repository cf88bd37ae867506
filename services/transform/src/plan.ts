import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { PropertyRule, TrackingPlan } from '@cdp/workspace';
import { cloneJson } from './clone';

/**
 * A source's tracking plan (Segment Protocols, segment-compat.md §3.7), compiled to JSON Schema
 * draft-07 validators (ajv) once per workspace version, and applied to a message before its
 * transformations: standard controls first (unplanned track events, unplanned properties or
 * traits, property/trait violations), then the common schema over the whole message.
 */

/** One thing a message did that its plan does not allow. */
export interface Violation {
  /**
   * Bounded by the plan, so a metric label: `unplanned_event`, `unplanned_property`,
   * `unplanned_trait`, or an ajv keyword with the schema path it is about (`minimum:properties.total`,
   * `required:properties.orderId`, `type:common.userId`).
   */
  rule: string;
  /** Where in the message, from its root (`properties.total`, `traits.email`, `userId`; `` for the whole message). */
  path: string;
  /** What is wrong (ajv's message, or the rule in words); never the value itself. */
  detail: string;
  /** What the enforcement did: kept the event as is, removed the offending field, or blocked the event. */
  outcome: 'allowed' | 'omitted' | 'blocked';
}

export type PlanBlockReason = 'plan_unplanned_event' | 'plan_violation' | 'plan_common_violation';

export type PlanOutcome = (
  | { kind: 'keep'; message: Record<string, unknown>; violations: Violation[] }
  | { kind: 'block'; reason: PlanBlockReason; violations: Violation[] }
) & {
  /** The event as a metric label: a planned track event's name, `(unplanned)`, or `(identify)`, `(page)`, ... */
  event: string;
};

interface CompiledSection {
  validate: ValidateFunction;
  /** Top-level keys the plan lists: others are unplanned. */
  keys: ReadonlySet<string>;
}

export interface CompiledPlan {
  id: string | undefined;
  events: ReadonlyMap<string, CompiledSection>;
  identify?: CompiledSection;
  group?: CompiledSection;
  common?: ValidateFunction;
  enforcement: TrackingPlan['enforcement'];
}

/** The draft-07 schema of one property rule (libs/workspace PropertyRule). */
export function ruleSchema(rule: PropertyRule): Record<string, unknown> {
  const schema: Record<string, unknown> = {};
  if (rule.type !== undefined) {
    const types = Array.isArray(rule.type) ? rule.type : [rule.type];
    if (!types.includes('any')) schema.type = types.length === 1 ? types[0] : types;
  }
  for (const key of ['enum', 'pattern', 'format', 'minimum', 'maximum', 'minLength', 'maxLength'] as const) {
    if (rule[key] !== undefined) schema[key] = rule[key];
  }
  if (rule.items) schema.items = ruleSchema(rule.items);
  if (rule.properties) Object.assign(schema, objectSchema(rule.properties));
  return schema;
}

/** `{ properties, required }` of a set of property rules (`required: true` on a rule → the parent's `required`). */
export function objectSchema(rules: Readonly<Record<string, PropertyRule>>): Record<string, unknown> {
  const required = Object.keys(rules).filter((k) => rules[k].required);
  return {
    type: 'object',
    properties: Object.fromEntries(Object.entries(rules).map(([k, r]) => [k, ruleSchema(r)])),
    ...(required.length > 0 ? { required } : {}),
  };
}

const compiledPlans = new WeakMap<TrackingPlan, CompiledPlan>();

/**
 * The compiled plan. Workspace versions are deep-frozen objects, so caching by the plan object
 * compiles each plan once per version; a new version's plan is compiled on first use.
 */
export function compilePlan(plan: TrackingPlan): CompiledPlan {
  let compiled = compiledPlans.get(plan);
  if (compiled) return compiled;
  // One Ajv per plan version: a `$id` in the common schema may come back in the next version.
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  const section = (rules: Readonly<Record<string, PropertyRule>>): CompiledSection => ({
    validate: ajv.compile(objectSchema(rules)),
    keys: new Set(Object.keys(rules)),
  });
  compiled = {
    id: plan.id,
    events: new Map(plan.events.map((e) => [e.name, section(e.properties)])),
    ...(plan.identify ? { identify: section(plan.identify.traits) } : {}),
    ...(plan.group ? { group: section(plan.group.traits) } : {}),
    // A copy: the workspace config is deep-frozen.
    ...(plan.common ? { common: ajv.compile(structuredClone(plan.common) as object) } : {}),
    enforcement: plan.enforcement,
  };
  compiledPlans.set(plan, compiled);
  return compiled;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON Pointer → keys (`/a~1b/0` → [`a/b`, `0`]). */
function pointerKeys(pointer: string): string[] {
  return pointer === ''
    ? []
    : pointer
        .slice(1)
        .split('/')
        .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** Dotted path with array indices as `[]` (bounded label): `properties.items[].sku`. */
function labelPath(prefix: string, keys: readonly string[], data: unknown): string {
  let path = prefix;
  let current = data;
  for (const key of keys) {
    if (Array.isArray(current)) {
      path += '[]';
      current = current[Number(key)];
    } else {
      path += path === '' ? key : `.${key}`;
      current = isObject(current) ? current[key] : undefined;
    }
  }
  return path;
}

function schemaViolations(
  errors: readonly ErrorObject[] | null | undefined,
  prefix: string,
  data: unknown,
  rulePrefix: string,
  outcome: (e: ErrorObject) => Violation['outcome'],
): Violation[] {
  return (errors ?? []).map((e) => {
    const keys = pointerKeys(e.instancePath);
    const extra =
      e.keyword === 'required'
        ? [String((e.params as { missingProperty: string }).missingProperty)]
        : e.keyword === 'additionalProperties'
          ? [String((e.params as { additionalProperty: string }).additionalProperty)]
          : [];
    const path = labelPath(prefix, [...keys, ...extra], data);
    // A missing property's name comes from the schema (bounded); an additional one's from the message (not).
    const rulePath = labelPath(rulePrefix, e.keyword === 'required' ? [...keys, ...extra] : keys, data);
    return { rule: `${e.keyword}:${rulePath || '(root)'}`, path, detail: e.message ?? e.keyword, outcome: outcome(e) };
  });
}

/**
 * Deletes what each error points at, in `container`: the value at its instance path (an array
 * element takes its whole array with it, so indices do not shift). A missing required property
 * points at its parent object, which goes (nested), or is left alone (the top level: nothing
 * there to omit).
 */
function omitOffending(container: Record<string, unknown>, errors: readonly ErrorObject[]): void {
  for (const e of errors) {
    const keys = pointerKeys(e.instancePath);
    let parent: unknown = container;
    let depth = 0;
    for (; depth < keys.length - 1; depth++) {
      const next: unknown = isObject(parent) ? parent[keys[depth]] : undefined;
      if (Array.isArray(next)) break;
      parent = next;
    }
    if (isObject(parent) && keys.length > 0) delete parent[keys[depth]];
  }
}

/** A blocked event's findings: whatever else they said, the event went nowhere. */
function blockedAll(violations: Violation[]): Violation[] {
  return violations.map((v) => ({ ...v, outcome: 'blocked' }));
}

/**
 * Checks one message against its source's plan. Never changes `input`: omissions happen on a
 * copy. Messages of a type the plan has no section for (page, screen, alias; identify or group
 * without `identify`/`group`) are only checked against the common schema.
 */
export function checkPlan(plan: TrackingPlan, input: Record<string, unknown>): PlanOutcome {
  const compiled = compilePlan(plan);
  const { enforcement } = compiled;
  const violations: Violation[] = [];
  let message = input;
  let copied = false;
  const own = () => {
    if (!copied) {
      message = cloneJson(input);
      copied = true;
    }
    return message;
  };

  let section: CompiledSection | undefined;
  let event = `(${typeof input.type === 'string' ? input.type : 'unknown'})`;
  let field: 'properties' | 'traits' = 'properties';
  let unplanned: 'allow' | 'omit' = enforcement.unplannedProperties;
  let onViolation: 'allow' | 'block' | 'omit' = enforcement.violations;
  if (input.type === 'track') {
    const name = typeof input.event === 'string' ? input.event : '';
    section = compiled.events.get(name);
    event = section ? name : '(unplanned)';
    if (!section) {
      const block = enforcement.unplannedEvents === 'block';
      violations.push({
        rule: 'unplanned_event',
        path: 'event',
        detail: 'track event not in the tracking plan',
        outcome: block ? 'blocked' : 'allowed',
      });
      if (block) return { kind: 'block', reason: 'plan_unplanned_event', violations, event };
    }
  } else if (input.type === 'identify' || input.type === 'group') {
    section = input.type === 'identify' ? compiled.identify : compiled.group;
    field = 'traits';
    unplanned = enforcement.unplannedTraits;
    onViolation = enforcement.traitViolations;
  }

  if (section) {
    const given = input[field];
    const data = isObject(given) ? given : {};
    const extra = Object.keys(data).filter((k) => !section.keys.has(k));
    for (const key of extra) {
      violations.push({
        rule: field === 'traits' ? 'unplanned_trait' : 'unplanned_property',
        path: `${field}.${key}`,
        detail: `${field === 'traits' ? 'trait' : 'property'} not in the tracking plan`,
        outcome: unplanned === 'omit' ? 'omitted' : 'allowed',
      });
    }
    if (extra.length > 0 && unplanned === 'omit' && isObject(input[field])) {
      const target = own()[field] as Record<string, unknown>;
      for (const key of extra) delete target[key];
    }
    const current = message[field];
    const checked = isObject(current) ? current : {};
    if (!section.validate(checked)) {
      const errors = section.validate.errors ?? [];
      // A missing required property cannot be omitted: under `omit` the event keeps going without it.
      const outcome = (e: ErrorObject) =>
        onViolation === 'block' ? 'blocked' : onViolation === 'omit' && e.instancePath !== '' ? 'omitted' : 'allowed';
      violations.push(...schemaViolations(errors, field, checked, field, outcome));
      if (onViolation === 'block') return { kind: 'block', reason: 'plan_violation', violations: blockedAll(violations), event };
      if (onViolation === 'omit' && isObject(input[field])) omitOffending(own()[field] as Record<string, unknown>, errors);
    }
  }

  if (compiled.common && !compiled.common(message)) {
    const block = enforcement.commonViolations === 'block';
    violations.push(...schemaViolations(compiled.common.errors, '', message, 'common', () => (block ? 'blocked' : 'allowed')));
    if (block) return { kind: 'block', reason: 'plan_common_violation', violations: blockedAll(violations), event };
  }
  return { kind: 'keep', message, violations, event };
}
