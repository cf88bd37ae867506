// GDPR deletions at destinations: transform turns each delete regulation record of
// cdp.regulations (DELETE_ONLY, SUPPRESS_WITH_DELETE; one per space and user) into one delete job
// per action destination, sent through the director RPC like any job (JobDB, retries, status).
// A consumer group of its own reads the topic, so each record is sent once across replicas and
// restarts (at least once: a crash before the commit sends it again, a duplicate where it lands
// in the same JobDB). The directors run the definitions' delete handlers and report each
// destination's part (docs/contracts.md "GDPR deletions at destinations").
import crypto from 'node:crypto';
import { DELETE_SUBSCRIPTION_ID, type DeletionPayload, type RpcJobInput } from '@cdp/director-rpc';
import { deletes, regulationSchema, type Regulation } from '@cdp/events';
import { CommitAfterWorkConsumer, type CommitAfterWorkConsumerOptions } from '@cdp/kafka';
import type { Workspace } from '@cdp/workspace';
import { sendFailure, type JobSender } from './fan-out';

/**
 * The delete jobs of one regulation record: one per action destination (the director knows which
 * definitions have a delete handler and completes the others without a call). A destination
 * connected to no source of the user's space gets a job too, marked `connected: false` (counted
 * for the regulation, nothing sent), so each destination's part is done after `subjects` jobs.
 */
export function deletionJobs(regulation: Regulation, workspace: Workspace): RpcJobInput[] {
  if (!deletes(regulation.type)) return [];
  const spaceSources = workspace.sourcesInSpace(regulation.spaceId);
  const subject = crypto.createHash('sha256').update(`${regulation.spaceId}\u0000${regulation.userId}`).digest('hex').slice(0, 40);
  const jobs: RpcJobInput[] = [];
  for (const destination of workspace.config.destinations) {
    if (destination.kind !== 'action') continue;
    const connected = spaceSources.find((s) => workspace.connection(s.id, destination.id) !== undefined);
    // A job names a source (delivery counts are per source and destination): the connected one,
    // else any source of the destination or of the space.
    const sourceId =
      connected?.id ?? workspace.config.connections.find((c) => c.destinationId === destination.id)?.sourceId ?? spaceSources[0]?.id;
    if (sourceId === undefined) continue;
    const payload: DeletionPayload = {
      type: 'delete',
      regulationId: regulation.regulationId,
      spaceId: regulation.spaceId,
      userId: regulation.userId,
      ...(regulation.subjects !== undefined && { subjects: regulation.subjects }),
      connected: connected !== undefined,
    };
    jobs.push({
      sourceId,
      // Never the user id itself in a key (it may be long, and keys are logged).
      messageId: `regulation:${regulation.regulationId}:${subject}`,
      destinationId: destination.id,
      subscriptionId: DELETE_SUBSCRIPTION_ID,
      payload,
      // No receivedAt: the retry window starts when the job is stored, not when the regulation
      // was requested (a regulation read late, e.g. by a new group, would otherwise expire at once).
    });
  }
  return jobs;
}

export type DeletionConsumerOptions = Omit<CommitAfterWorkConsumerOptions<Regulation | null>, 'decode' | 'handle' | 'stage'> & {
  sender: JobSender;
  workspace: () => Workspace;
};

/** The consumer group on cdp.regulations that sends the delete jobs (committed once the directors stored them). */
export function deletionConsumer(options: DeletionConsumerOptions): CommitAfterWorkConsumer<Regulation | null> {
  const { sender, workspace, ...worker } = options;
  return new CommitAfterWorkConsumer<Regulation | null>({
    ...worker,
    stage: 'transform-deletions',
    // A new group starts at the beginning: deletions requested before it existed are sent too.
    fromBeginning: true,
    decode: (message) => (message.value === null ? null : regulationSchema.parse(JSON.parse(message.value.toString('utf8')))),
    handle: async (items, ctx) => {
      const current = workspace();
      const jobs: RpcJobInput[] = [];
      const owner: number[] = [];
      items.forEach((item, i) => {
        if (item.value === null) return; // a tombstone: nothing to delete
        for (const job of deletionJobs(item.value, current)) {
          jobs.push(job);
          owner.push(i);
        }
      });
      if (jobs.length === 0) return;
      let results;
      try {
        results = await sender.send(jobs);
      } catch (error) {
        throw sendFailure(error);
      }
      const rejected = new Map<number, string[]>();
      results.forEach((result, j) => {
        if (result.status === 'rejected')
          rejected.set(owner[j], [...(rejected.get(owner[j]) ?? []), `${jobs[j].destinationId}: ${result.error}`]);
      });
      for (const [i, errors] of rejected)
        ctx.deadLetter(items[i].message, new Error(`director rejected delete job(s): ${errors.join('; ')}`));
    },
  });
}
