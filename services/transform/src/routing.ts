import { regulationFor, type Envelope, type Regulation } from '@cdp/events';
import type { Destination, Filters, Subscription, Workspace } from '@cdp/workspace';
import { applyFilterRules, evaluateFql } from './filters';
import { checkPlan, type PlanBlockReason, type Violation } from './plan';
import { applyTransformations, type CodeRunner, type TransformationOutcome } from './transformations';

/**
 * Which (destination, subscription) pairs an event goes to (DESIGN.md "Routing", "Replay"):
 * every enabled subscription of every enabled destination connected to the event's source, less
 * what the message's `integrations` object, a replay's destination list, the type/event-name
 * filters, the destination filter rules (FQL) and the subscriptions' `subscribe` conditions
 * exclude. No I/O; one workspace version per call; `random` draws unkeyed samples.
 */

/** Why a destination (or one of its subscriptions) gets no job for an event; a metric label. */
export type SkipReason =
  /** `integrations` turned the destination off (`All: false`, or `Name: false`). */
  | 'integrations'
  /** A replayed event and a destination its `replay.destinations` does not name. */
  | 'replay'
  /** The destination's or the connection's `allowTypes` / `allowEvents` / `denyEvents`. */
  | 'filter'
  /** The subscription is disabled. */
  | 'subscription_disabled'
  /** The subscription's `subscribe` condition (FQL) does not match the event. */
  | 'subscription_condition'
  /** The subscription's condition cannot be evaluated (syntax or type error): no job, fail closed. */
  | 'subscription_condition_error'
  /** A destination filter rule dropped the event (`drop`). */
  | 'filter_drop'
  /** A `sample` action of a destination filter left the event out. */
  | 'filter_sample'
  /** A filter rule's condition cannot be evaluated: the event is dropped (fail closed, as Segment). */
  | 'filter_error'
  /** The connection's own transformations dropped the event for this destination (`drop_event`, or an error). */
  | 'transformation_drop'
  | 'transformation_error';

/** Why a whole event goes nowhere. */
export type DropReason =
  /** A suppress or delete regulation of the event's userId in its space (GDPR). */
  | 'regulated'
  /** The tracking plan blocked it (an unplanned track event, a violation, a common-schema violation). */
  | PlanBlockReason
  /** The source's transformations dropped it (`drop_event`, or a condition that cannot be evaluated). */
  | 'transformation_drop'
  | 'transformation_error';

export interface Route {
  destination: Destination;
  subscription: Subscription;
  /** The message for this destination: the event's, or a copy the filters' property actions changed. */
  message: Record<string, unknown>;
}

export interface Routing {
  routes: Route[];
  /** The whole event goes nowhere, and why. */
  dropped?: { reason: DropReason; detail?: string };
  /** The source's tracking plan's findings (absent when the source has no plan). */
  plan?: { id: string; event: string; violations: Violation[] };
  /** `code` transformations the event passed without being run (no code runner). */
  transformationsNotRun: number;
  skipped: Array<{ destinationId: string; subscriptionId?: string; reason: SkipReason; detail?: string }>;
}

/**
 * The names Segment's catalog gives a destination type, as an `integrations` key may spell them.
 * Action destinations are named by their workspace `name` (and their slug) until a catalog of
 * their definitions is vendored.
 */
const CATALOG_NAMES: Readonly<Record<string, readonly string[]>> = {
  webhook: ['Webhooks', 'Webhooks (Actions)'],
};

/** Every `integrations` key that addresses this destination: its name, its catalog names, its type slug. */
export function integrationNames(destination: Destination): string[] {
  return [...new Set([destination.name, ...(CATALOG_NAMES[destination.type] ?? []), destination.type])];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Segment's rule (@segment/facade `enabled`, segment-compat.md §4.6): a key naming the
 * destination wins — `false` turns it off, `true` or any other value (a settings object) turns it
 * on; otherwise `All` (any case) decides, defaulting to on.
 */
export function integrationEnabled(integrations: unknown, names: readonly string[]): boolean {
  if (!isObject(integrations)) return true;
  for (const name of names) {
    if (Object.hasOwn(integrations, name)) {
      const value = integrations[name];
      return typeof value === 'boolean' ? value : true;
    }
  }
  for (const [key, value] of Object.entries(integrations)) {
    if (key.toLowerCase() === 'all' && typeof value === 'boolean') return value;
  }
  return true;
}

/** The type and event-name filters of a destination or a connection: true when the event passes. */
export function passesFilters(filters: Filters | undefined, message: Record<string, unknown>): boolean {
  if (!filters) return true;
  if (filters.allowTypes && !(filters.allowTypes as readonly unknown[]).includes(message.type)) return false;
  if (message.type !== 'track') return true;
  const event = typeof message.event === 'string' ? message.event : '';
  if (filters.allowEvents && !filters.allowEvents.includes(event)) return false;
  if (filters.denyEvents?.includes(event)) return false;
  return true;
}

/** One step of routing as the dry-run shows it. */
export interface TraceStep {
  step:
    | 'regulation'
    | 'tracking_plan'
    | 'source_transformations'
    | 'replay'
    | 'integrations'
    | 'connection_transformations'
    | 'filters'
    | 'filter_rules'
    | 'subscription';
  destinationId?: string;
  subscriptionId?: string;
  /** `passed` (went on), `skipped` / `dropped` (went no further), or a step's own word (`job`). */
  outcome: 'passed' | 'skipped' | 'dropped' | 'job';
  reason?: string;
  detail?: string;
  violations?: Violation[];
  /** The message after this step, when the step changed it. */
  message?: Record<string, unknown>;
}

export interface RouteOptions {
  /** Draws unkeyed samples (tests fix it). */
  random?: () => number;
  /** The regulation in force for a user of a space (cdp.regulations); none when absent. */
  regulation?: (spaceId: string, userId: string) => Regulation | undefined;
  /** Runs `code` transformations (issue 25); they pass unchanged, counted, without one. */
  runCode?: CodeRunner;
  /** Collects every step's result (the admin API's dry-run); nothing is recorded without it. */
  trace?: TraceStep[];
}

/**
 * The steps, in order: GDPR regulations, the source's tracking plan, the source's
 * transformations, then per destination: replay, `integrations`, the connection's
 * transformations, type/event filters, filter rules, subscriptions.
 */
export function route(envelope: Envelope, workspace: Workspace, options: RouteOptions = {}): Routing {
  const routing: Routing = { routes: [], skipped: [], transformationsNotRun: 0 };
  const trace = options.trace;
  const source = workspace.source(envelope.sourceId);
  const regulation = options.regulation && source ? regulationFor(envelope.message, source.spaceId, options.regulation) : undefined;
  trace?.push(
    regulation
      ? { step: 'regulation', outcome: 'dropped', reason: 'regulated', detail: `${regulation.type} (${regulation.regulationId})` }
      : { step: 'regulation', outcome: 'passed' },
  );
  if (regulation) {
    routing.dropped = { reason: 'regulated' };
    return routing;
  }
  let message: Record<string, unknown> = envelope.message;
  if (source?.trackingPlan) {
    const checked = checkPlan(source.trackingPlan, message);
    routing.plan = { id: source.trackingPlan.id ?? source.id, event: checked.event, violations: checked.violations };
    trace?.push(
      checked.kind === 'block'
        ? { step: 'tracking_plan', outcome: 'dropped', reason: checked.reason, violations: checked.violations }
        : {
            step: 'tracking_plan',
            outcome: 'passed',
            violations: checked.violations,
            ...(checked.message !== message ? { message: checked.message } : {}),
          },
    );
    if (checked.kind === 'block') {
      routing.dropped = { reason: checked.reason };
      return routing;
    }
    message = checked.message;
  }
  const transformed = applyTransformations(source?.transformations ?? [], message, options.runCode);
  trace?.push(traceTransformations('source_transformations', transformed, message));
  if (transformed.kind === 'drop') {
    routing.dropped = { reason: transformed.reason, ...(transformed.detail ? { detail: transformed.detail } : {}) };
    return routing;
  }
  routing.transformationsNotRun = transformed.notRun;
  message = transformed.message;
  const replayTo = envelope.replay ? new Set(envelope.replay.destinations) : undefined;
  for (const destination of workspace.destinationsForSource(envelope.sourceId)) {
    const destinationId = destination.id;
    const skip = (step: TraceStep['step'], reason: SkipReason, detail?: string) => {
      routing.skipped.push({ destinationId, reason, ...(detail ? { detail } : {}) });
      trace?.push({ step, destinationId, outcome: 'skipped', reason, ...(detail ? { detail } : {}) });
    };
    const passed = (step: TraceStep['step'], changed?: Record<string, unknown>) =>
      trace?.push({ step, destinationId, outcome: 'passed', ...(changed ? { message: changed } : {}) });
    if (replayTo && !replayTo.has(destinationId)) {
      skip('replay', 'replay');
      continue;
    }
    if (replayTo) passed('replay');
    if (!integrationEnabled(message.integrations, integrationNames(destination))) {
      skip('integrations', 'integrations');
      continue;
    }
    passed('integrations');
    const connection = workspace.connection(envelope.sourceId, destinationId);
    // The pair's own transformations, on a copy for this destination only.
    const own = applyTransformations(connection?.transformations ?? [], message, options.runCode);
    if (own.kind === 'drop') {
      skip('connection_transformations', own.reason, own.detail);
      continue;
    }
    if (trace && connection && connection.transformations.length > 0)
      trace.push({ ...traceTransformations('connection_transformations', own, message), destinationId });
    routing.transformationsNotRun += own.notRun;
    const forDestination = own.message;
    if (!passesFilters(destination.filters, forDestination) || !passesFilters(connection?.filters, forDestination)) {
      skip('filters', 'filter');
      continue;
    }
    passed('filters');
    // Segment's filters apply before mappings: the destination's rules, then the connection's.
    const filtered = applyFilterRules([...destination.filters.rules, ...(connection?.filters.rules ?? [])], forDestination, options.random);
    if (filtered.kind === 'drop') {
      skip('filter_rules', filtered.reason, filtered.detail);
      continue;
    }
    passed('filter_rules', filtered.message !== forDestination ? filtered.message : undefined);
    for (const subscription of destination.subscriptions) {
      const subscriptionId = subscription.id;
      const skipSubscription = (reason: SkipReason, detail?: string) => {
        routing.skipped.push({ destinationId, subscriptionId, reason, ...(detail ? { detail } : {}) });
        trace?.push({ step: 'subscription', destinationId, subscriptionId, outcome: 'skipped', reason, ...(detail ? { detail } : {}) });
      };
      if (!subscription.enabled) {
        skipSubscription('subscription_disabled');
        continue;
      }
      const matched = evaluateFql(subscription.subscribe, filtered.message);
      if (matched instanceof Error) skipSubscription('subscription_condition_error', matched.message);
      else if (!matched) skipSubscription('subscription_condition');
      else {
        routing.routes.push({ destination, subscription, message: filtered.message });
        trace?.push({ step: 'subscription', destinationId, subscriptionId, outcome: 'job' });
      }
    }
  }
  return routing;
}

function traceTransformations(
  step: 'source_transformations' | 'connection_transformations',
  outcome: TransformationOutcome,
  before: Record<string, unknown>,
): TraceStep {
  if (outcome.kind === 'drop')
    return { step, outcome: 'dropped', reason: outcome.reason, ...(outcome.detail ? { detail: outcome.detail } : {}) };
  return {
    step,
    outcome: 'passed',
    ...(outcome.notRun > 0 ? { detail: `${outcome.notRun} code transformation(s) not run` } : {}),
    ...(outcome.message !== before ? { message: outcome.message } : {}),
  };
}
