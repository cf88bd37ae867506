import type { Envelope } from '@cdp/events';
import type { Destination, Filters, Subscription, Workspace } from '@cdp/workspace';

/**
 * Which (destination, subscription) pairs an event goes to (DESIGN.md "Routing", "Replay"):
 * every enabled subscription of every enabled destination connected to the event's source, less
 * what the message's `integrations` object, a replay's destination list and the type/event-name
 * filters exclude. Pure: no I/O, one workspace version per call.
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
  /**
   * The subscription's `subscribe` is an FQL condition other than `all`: transform has no FQL
   * evaluator yet, and sending every event would deliver what the user excluded, so it fails
   * closed.
   */
  | 'subscription_condition_unsupported'
  /** The destination or the connection has FQL filter `rules`: not evaluated yet, so it fails closed (Segment drops on evaluator errors). */
  | 'filter_rules_unsupported';

export interface Route {
  destination: Destination;
  subscription: Subscription;
}

export interface Routing {
  routes: Route[];
  skipped: Array<{ destinationId: string; subscriptionId?: string; reason: SkipReason }>;
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
export function passesFilters(filters: Filters | undefined, message: Envelope['message']): boolean {
  if (!filters) return true;
  if (filters.allowTypes && !filters.allowTypes.includes(message.type)) return false;
  if (message.type !== 'track') return true;
  const event = typeof message.event === 'string' ? message.event : '';
  if (filters.allowEvents && !filters.allowEvents.includes(event)) return false;
  if (filters.denyEvents?.includes(event)) return false;
  return true;
}

export function route(envelope: Envelope, workspace: Workspace): Routing {
  const routing: Routing = { routes: [], skipped: [] };
  const replayTo = envelope.replay ? new Set(envelope.replay.destinations) : undefined;
  for (const destination of workspace.destinationsForSource(envelope.sourceId)) {
    const skip = (reason: SkipReason) => routing.skipped.push({ destinationId: destination.id, reason });
    if (replayTo && !replayTo.has(destination.id)) {
      skip('replay');
      continue;
    }
    if (!integrationEnabled(envelope.message.integrations, integrationNames(destination))) {
      skip('integrations');
      continue;
    }
    const connection = workspace.connection(envelope.sourceId, destination.id);
    if (!passesFilters(destination.filters, envelope.message) || !passesFilters(connection?.filters, envelope.message)) {
      skip('filter');
      continue;
    }
    if (destination.filters.rules.length > 0 || (connection?.filters.rules.length ?? 0) > 0) {
      skip('filter_rules_unsupported');
      continue;
    }
    for (const subscription of destination.subscriptions) {
      const reason = subscriptionSkip(subscription);
      if (reason) routing.skipped.push({ destinationId: destination.id, subscriptionId: subscription.id, reason });
      else routing.routes.push({ destination, subscription });
    }
  }
  return routing;
}

function subscriptionSkip(subscription: Subscription): SkipReason | undefined {
  if (!subscription.enabled) return 'subscription_disabled';
  if (subscription.subscribe.trim() !== 'all') return 'subscription_condition_unsupported';
  return undefined;
}
