// The identity stage: each chunk of cdp.deduped resolved to profiles, counted, and published to
// cdp.identified keyed by profileId; the worker commits the input only after the send is acked.
import { decodeEnvelope, encodeEnvelope, type Envelope } from '@cdp/events';
import type { BatchContext, BatchingProducer, Decoded, InboundMessage } from '@cdp/kafka';
import type { Source, Workspace } from '@cdp/workspace';
import type { Touch } from './graph';
import { compileRules, eventIds, type IdentityRules, type IdKey } from './ids';
import { recentEventsStored, resolved, suppressedEvents } from './metrics';
import { recentEventBody, type RecentEventBody, type RecentEvents, type RecentGroup } from './recent';
import type { Prefetched, Resolver } from './resolver';

export interface IdentityStageDeps {
  resolver: Resolver;
  producer: Pick<BatchingProducer, 'send'>;
  /** Where each counted event is kept for the Profile API (absent: not kept, e.g. in a bench of resolution alone). */
  recent?: RecentEvents;
  /** cdp.identified. */
  outputTopic: string;
  /** True when the message's user is suppressed in the space by a regulation: the event is dropped. */
  suppressed?: (message: { userId?: unknown }, spaceId: string) => boolean;
  workspace: () => Workspace;
}

export const decodeDeduped = (message: InboundMessage): Envelope => decodeEnvelope(message.value);

/** When the event happened (its corrected timestamp), else when it was received. */
function eventTime(envelope: Envelope): number {
  const t = Date.parse(envelope.message.timestamp ?? '');
  return Number.isFinite(t) ? t : Date.parse(envelope.receivedAt);
}

export class IdentityStage {
  /** Compiled rules per space, for one workspace version at a time. */
  private rules = new WeakMap<Workspace, Map<string, IdentityRules>>();

  constructor(private readonly deps: IdentityStageDeps) {}

  private rulesOf(workspace: Workspace, spaceId: string): IdentityRules | undefined {
    let bySpace = this.rules.get(workspace);
    if (!bySpace) this.rules.set(workspace, (bySpace = new Map()));
    let rules = bySpace.get(spaceId);
    const space = workspace.space(spaceId);
    if (!rules && space) bySpace.set(spaceId, (rules = compileRules(space.identity)));
    return rules;
  }

  async handle(items: Decoded<Envelope>[], ctx: BatchContext): Promise<void> {
    const workspace = this.deps.workspace();
    const out: Array<{ envelope: Envelope; spaceId?: string; profileId?: string }> = [];
    const touches = new Map<string, { spaceId: string; profileId: string; touch: Touch; events: RecentEventBody[] }>();
    const accepted: Array<{ envelope: Envelope; source: Source; rules: IdentityRules }> = [];
    const idsBySpace = new Map<string, IdKey[]>();
    for (const { message, value: envelope } of items) {
      const source = workspace.source(envelope.sourceId);
      const rules = source && this.rulesOf(workspace, source.spaceId);
      if (!source || !rules) {
        ctx.deadLetter(message, new Error(`source ${envelope.sourceId} is not in the workspace (or its space is not)`));
        continue;
      }
      if (this.deps.suppressed?.(envelope.message, source.spaceId)) {
        suppressedEvents.inc();
        continue;
      }
      accepted.push({ envelope, source, rules });
      let ids = idsBySpace.get(source.spaceId);
      if (!ids) idsBySpace.set(source.spaceId, (ids = []));
      ids.push(...eventIds(envelope.message, rules));
    }
    // The chunk's reads first, 100 a call; then each event resolves from the caches, in order.
    const prefetched = new Map<string, Prefetched>();
    for (const [spaceId, ids] of idsBySpace) prefetched.set(spaceId, await this.deps.resolver.prefetch(spaceId, ids));
    for (const { envelope, source, rules } of accepted) {
      const at = eventTime(envelope);
      const replay = envelope.replay !== undefined;
      const r = await this.deps.resolver.resolve({
        spaceId: source.spaceId,
        rules,
        message: envelope.message,
        timestamp: at,
        sourceId: envelope.sourceId,
        prefetched: prefetched.get(source.spaceId),
      });
      resolved.labels(r.outcome, String(replay)).inc();
      // Replayed events were counted the first time.
      if (r.profileId && !replay) {
        const key = `${source.spaceId}|${r.profileId}`;
        let entry = touches.get(key);
        if (entry) {
          entry.touch.events++;
          if (at >= entry.touch.lastSeenAt)
            Object.assign(entry.touch, { lastSeenAt: at, lastMessageId: envelope.messageId, lastSourceId: envelope.sourceId });
        } else
          touches.set(
            key,
            (entry = {
              spaceId: source.spaceId,
              profileId: r.profileId,
              touch: { events: 1, lastSeenAt: at, lastMessageId: envelope.messageId, lastSourceId: envelope.sourceId },
              events: [],
            }),
          );
        if (this.deps.recent) entry.events.push(recentEventBody(envelope.message, envelope.sourceId, r.ids, at));
      }
      out.push({ envelope, spaceId: source.spaceId, profileId: r.profileId });
    }
    // Counts first: a profile merged away since its events resolved names the winner to publish.
    const counted = new Map<string, string>();
    const recent: RecentGroup[] = [];
    const entries = [...touches];
    const after = await this.deps.resolver.touchAll(entries.map(([, t]) => t));
    entries.forEach(([key, { touch, events }], i) => {
      const p = after[i];
      counted.set(key, p.profileId);
      // The slots after the counter as it was before this chunk's events: disjoint from any other writer's.
      recent.push({ spaceId: touches.get(key)!.spaceId, profileId: p.profileId, counterBefore: p.events - touch.events, events });
    });
    if (this.deps.recent) recentEventsStored.inc(await this.deps.recent.record(recent));
    await this.deps.producer.send(
      this.deps.outputTopic,
      out.map(({ envelope, spaceId, profileId }) => {
        const live = profileId && (counted.get(`${spaceId}|${profileId}`) ?? profileId);
        // An event without a usable id keeps the input's key; it carries no profileId.
        return {
          key: live || `${envelope.sourceId}:${envelope.messageId}`,
          value: encodeEnvelope(live ? { ...envelope, profileId: live } : envelope),
        };
      }),
    );
  }
}
