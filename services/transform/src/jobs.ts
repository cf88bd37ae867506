import type { RpcJobInput } from '@cdp/director-rpc';
import type { Envelope } from '@cdp/events';
import type { Route } from './routing';

/**
 * One director job per route: the route's Segment message as payload (the event as received,
 * less what destination filters removed; the director maps it for its destination), keyed for the
 * JobDB's idempotency index by (sourceId, messageId, destinationId, subscriptionId).
 */
export function jobsFor(envelope: Envelope, routes: readonly Route[]): RpcJobInput[] {
  return routes.map(({ destination, subscription, message }) => ({
    sourceId: envelope.sourceId,
    messageId: envelope.messageId,
    destinationId: destination.id,
    subscriptionId: subscription.id,
    payload: message as RpcJobInput['payload'],
    receivedAt: envelope.receivedAt,
  }));
}
