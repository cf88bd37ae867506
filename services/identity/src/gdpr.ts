// identity's part of regulations: it follows cdp.regulations (every replica reads it whole), drops
// the events of suppressed users before resolving them, and for SUPPRESS_WITH_DELETE and
// DELETE_ONLY removes the user's profile (and those merged into it), its mappings and its recent
// events; each handled record is reported through the shared RegulationReporter.
import { ConditionalCheckFailedException, DeleteItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { regulationFor, regulationSchema, suppresses, type Regulation } from '@cdp/events';
import { CompactedTopicFollower, type Kafka, type RegulationReporter } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';
import { errorFields, type Logger } from '@cdp/log';
import type { GraphStore, Profile } from './graph';
import { idKey } from './ids';
import { regulationDeletions } from './metrics';
import type { RecentEvents } from './recent';
import { KEY, type TableNames } from './tables';

const deletes = (r: Regulation) => r.type === 'SUPPRESS_WITH_DELETE' || r.type === 'DELETE_ONLY';
const MAX_CHAIN = 10_000;
const ATTEMPTS = 3;

/**
 * Deletes a user's live profile, the profiles merged into it, their mappings and recent events —
 * only a profile created before the regulation (a user who came back afterwards keeps the new
 * profile, so a replica reading the topic again after a restart deletes nothing new). Returns
 * how many profiles were deleted.
 */
export async function deleteUserData(
  deps: { client: DynamoDBClient; tables: TableNames; store: GraphStore; recent: RecentEvents },
  spaceId: string,
  userId: string,
  before: number,
): Promise<number> {
  const mapped = (await deps.store.mappings(spaceId, [idKey('user_id', userId)])).get(idKey('user_id', userId));
  if (!mapped) return 0;
  let live: Profile | undefined;
  let id = mapped;
  for (let hops = 0; hops < MAX_CHAIN && !live; hops++) {
    const p = await deps.store.profile(spaceId, id);
    if (!p) return 0;
    if (p.mergedInto) id = p.mergedInto;
    else live = p;
  }
  if (!live || live.createdAt > before) return 0;
  const group = [live.profileId, ...live.mergedFrom];
  // Mappings first (a new event of the user then starts a new profile), only those that still
  // lead into this group; then the events; then the profiles.
  const names = Object.fromEntries(group.slice(0, 100).map((p, i) => [`:p${i}`, { S: p }]));
  for (const id of Object.keys(live.ids)) {
    try {
      await deps.client.send(
        new DeleteItemCommand({
          TableName: deps.tables.ids,
          Key: { [KEY]: { S: `${spaceId}|${id}` } },
          ConditionExpression: `profileId IN (${Object.keys(names).join(', ')})`,
          ExpressionAttributeValues: names,
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  for (const p of group) await deps.recent.deleteProfile(spaceId, p);
  for (const p of group)
    await deps.client.send(new DeleteItemCommand({ TableName: deps.tables.profiles, Key: { [KEY]: { S: `${spaceId}|${p}` } } }));
  return group.length;
}

export interface IdentityRegulationsOptions {
  kafka: Kafka;
  /** cdp.regulations. */
  topic: string;
  logger: Logger;
  groupPrefix: string;
  reporter: RegulationReporter;
  deleteUser: (spaceId: string, userId: string, before: number) => Promise<number>;
}

export class IdentityRegulations {
  private readonly state = new Map<string, Regulation>();
  private readonly follower: CompactedTopicFollower;
  /** Deletions run one at a time, in the order their records were read. */
  private work: Promise<void> = Promise.resolve();

  constructor(private readonly options: IdentityRegulationsOptions) {
    this.follower = new CompactedTopicFollower({
      kafka: options.kafka,
      topic: options.topic,
      logger: options.logger,
      groupPrefix: options.groupPrefix,
      apply: (record) => {
        if (record.key === null) return 'invalid';
        if (record.value === null) {
          this.state.delete(record.key);
          return;
        }
        let r: Regulation;
        try {
          r = regulationSchema.parse(JSON.parse(record.value.toString('utf8')));
        } catch {
          return 'invalid';
        }
        this.state.set(record.key, r);
        if (deletes(r)) this.work = this.work.then(() => this.deleteFor(r));
        else options.reporter.handled(r);
      },
      afterBatch: () => {
        this.work = this.work.then(() => options.reporter.flush());
      },
    });
  }

  private async deleteFor(r: Regulation): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const profiles = await this.options.deleteUser(r.spaceId, r.userId, Date.parse(r.requestedAt));
        regulationDeletions.labels('done').inc();
        if (profiles > 0) this.options.logger.info({ regulationId: r.regulationId, profiles }, 'deleted a regulated user');
        this.options.reporter.handled(r);
        return;
      } catch (error) {
        if (attempt >= ATTEMPTS) {
          regulationDeletions.labels('failed').inc();
          this.options.logger.error({ ...errorFields(error), regulationId: r.regulationId }, 'deleting a regulated user failed');
          this.options.reporter.handled(r, `deletion failed: ${error instanceof Error ? error.message : String(error)}`);
          return;
        }
        await sleep(500 * attempt);
      }
    }
  }

  /** True when the message's user is suppressed in this space (its events are dropped). */
  suppressed(message: { userId?: unknown }, spaceId: string): boolean {
    const r = regulationFor(message, spaceId, (s, u) => this.state.get(`${s}:${u}`));
    return r !== undefined && suppresses(r.type);
  }

  readiness(): { ok: boolean; detail: string } {
    return this.follower.readiness();
  }

  start(): void {
    this.follower.start();
  }

  async stop(): Promise<void> {
    await this.follower.stop();
    await this.work;
  }
}
