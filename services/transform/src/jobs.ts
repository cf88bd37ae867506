import type { RpcJobInput } from '@cdp/director-rpc';
import type { Envelope } from '@cdp/events';
import type { Route } from './routing';

/**
 * One director job per route: the route's Segment message as payload (the event as received,
 * less what destination filters removed; the director maps it for its destination), keyed for the
 * JobDB's idempotency index by (sourceId, messageId, destinationId, subscriptionId), and by the
 * replay id too for a forced replay (`replay.force`), which delivers history again on purpose: a
 * plain replay of an event whose job is still in the JobDB answers `duplicate`.
 */
export function jobsFor(envelope: Envelope, routes: readonly Route[]): RpcJobInput[] {
  return routes.map(({ destination, subscription, message }) => ({
    sourceId: envelope.sourceId,
    messageId: envelope.messageId,
    destinationId: destination.id,
    subscriptionId: subscription.id,
    ...(envelope.replay?.force ? { replayId: envelope.replay.id } : {}),
    payload: message as RpcJobInput['payload'],
    receivedAt: envelope.receivedAt,
  }));
}
