import type { RpcJobInput } from '@cdp/director-rpc';
import type { Envelope } from '@cdp/events';
import type { Route } from './routing';

/**
 * One director job per route: the raw Segment message as payload (the director maps it for its
 * destination, so undelivered and replayed jobs keep the event as received), keyed for the
 * JobDB's idempotency index by (sourceId, messageId, destinationId, subscriptionId).
 */
export function jobsFor(envelope: Envelope, routes: readonly Route[]): RpcJobInput[] {
  return routes.map(({ destination, subscription }) => ({
    sourceId: envelope.sourceId,
    messageId: envelope.messageId,
    destinationId: destination.id,
    subscriptionId: subscription.id,
    payload: envelope.message as RpcJobInput['payload'],
    receivedAt: envelope.receivedAt,
  }));
}
