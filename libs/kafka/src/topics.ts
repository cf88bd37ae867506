import type { Admin, ITopicConfig } from 'kafkajs';
import { ConfigResourceTypes, ConfigSource } from 'kafkajs';
import { checkKafkaEnv, dedupWindowEnv, kafkaEnv, logLevel, topicTableEnv, z, type KafkaEnv, type TopicTableEnv } from '@cdp/config';
import { sleep } from '@cdp/lifecycle';

/** Topic roles of DESIGN.md's topic table; the full name is `<prefix><role>`. */
export const TOPIC_ROLES = [
  'ingest',
  'deduped',
  'identified',
  'undelivered',
  'regulations',
  'regulation-status',
  'dlq',
  'dlq-handled',
] as const;
export type TopicRole = (typeof TOPIC_ROLES)[number];

export type TopicNames = Record<TopicRole, string>;

export function topicNames(prefix = 'cdp.'): TopicNames {
  return Object.fromEntries(TOPIC_ROLES.map((r) => [r, `${prefix}${r}`])) as TopicNames;
}

export interface TopicSpec {
  name: string;
  partitions: number;
  replicationFactor: number;
  configs: Record<string, string>;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export interface TopicSettings {
  prefix?: string;
  /** Partitions per role; ingest and deduped must be equal (co-partitioned). */
  partitions?: Partial<Record<TopicRole, number>>;
  defaultPartitions?: number;
  replicationFactor?: number;
  minInsyncReplicas?: number;
  /** The dedup window; cdp.deduped keeps it plus two days (dedup rebuilds from it). */
  dedupWindowMs?: number;
}

/** The env of `cdp-topics` (topics-cli.ts): the same names, types and checks the services read. */
export const topicsCliEnv = z
  .object({ ...kafkaEnv, ...topicTableEnv, ...dedupWindowEnv, LOG_LEVEL: logLevel().default('warn') })
  .superRefine(checkKafkaEnv);

/**
 * The settings the topic-table env describes (libs/config `topicTableEnv`). Without
 * DEDUP_WINDOW_MS the window stays the default: only dedup and `cdp-topics` know it.
 */
export function topicSettings(config: Pick<KafkaEnv, 'CDP_TOPIC_PREFIX'> & TopicTableEnv & { DEDUP_WINDOW_MS?: number }): TopicSettings {
  return {
    prefix: config.CDP_TOPIC_PREFIX,
    defaultPartitions: config.KAFKA_TOPIC_PARTITIONS,
    replicationFactor: config.KAFKA_REPLICATION_FACTOR,
    minInsyncReplicas: config.KAFKA_MIN_INSYNC_REPLICAS,
    dedupWindowMs: config.DEDUP_WINDOW_MS,
  };
}

/**
 * The topic table of DESIGN.md with production defaults (RF 3, min ISR 2); tests pass RF 1.
 */
export function topicSpecs(settings: TopicSettings = {}): Record<TopicRole, TopicSpec> {
  const names = topicNames(settings.prefix);
  const rf = settings.replicationFactor ?? 3;
  const minIsr = settings.minInsyncReplicas ?? Math.min(2, rf);
  const defaultPartitions = settings.defaultPartitions ?? 12;
  const partitions = (role: TopicRole) => settings.partitions?.[role] ?? defaultPartitions;
  const retention = (ms: number) => ({ 'cleanup.policy': 'delete', 'retention.ms': String(ms) });
  const dedupWindow = settings.dedupWindowMs ?? 28 * DAY_MS;
  const configs: Record<TopicRole, Record<string, string>> = {
    ingest: retention(7 * DAY_MS),
    deduped: retention(dedupWindow + 2 * DAY_MS),
    identified: retention(7 * DAY_MS),
    undelivered: retention(7 * DAY_MS),
    // Latest state per user; tombstones removed after a day so deletions propagate first.
    regulations: { 'cleanup.policy': 'compact', 'delete.retention.ms': String(DAY_MS), 'min.compaction.lag.ms': '0' },
    // Latest state per regulationId:stage; identity folds the stages into the regulation's status.
    'regulation-status': { 'cleanup.policy': 'compact', 'delete.retention.ms': String(DAY_MS), 'min.compaction.lag.ms': '0' },
    dlq: retention(14 * DAY_MS),
    // cdp-dlq's record of what it re-sent or discarded, one marker per DLQ record (keyed by its
    // partition:offset); kept as long as the records it describes.
    'dlq-handled': { 'cleanup.policy': 'compact,delete', 'retention.ms': String(14 * DAY_MS), 'min.compaction.lag.ms': '0' },
  };
  if (partitions('ingest') !== partitions('deduped')) {
    throw new Error(`ingest (${partitions('ingest')}) and deduped (${partitions('deduped')}) must have the same partition count`);
  }
  const spec = (role: TopicRole): TopicSpec => ({
    name: names[role],
    partitions: partitions(role),
    replicationFactor: rf,
    configs: { ...configs[role], 'min.insync.replicas': String(minIsr) },
  });
  return Object.fromEntries(TOPIC_ROLES.map((role) => [role, spec(role)])) as Record<TopicRole, TopicSpec>;
}

/** Metadata errors of a topic created moments ago whose partitions are not served yet. */
const NOT_SERVED_YET = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Resolves once the metadata a client gets names a leader for every partition of `topics`.
 * kafkajs's `createTopics({ waitForLeaders: true })` retries only LEADER_NOT_AVAILABLE: an answer
 * from before the broker serves a just-created topic ("This server does not host this
 * topic-partition") failed the whole call, seen on a loaded machine.
 */
export async function waitForTopicLeaders(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let pending: string;
    try {
      const metadata = await admin.fetchTopicMetadata({ topics });
      const served = new Set(
        metadata.topics.filter((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)).map((t) => t.name),
      );
      const waiting = topics.filter((t) => !served.has(t));
      if (waiting.length === 0) return;
      pending = `no leader yet for ${waiting.join(', ')}`;
    } catch (error) {
      if (!NOT_SERVED_YET.has((error as { type?: string }).type ?? '')) throw error;
      pending = (error as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`topics not served after ${timeoutMs} ms: ${pending}`);
    await sleep(100);
  }
}

/**
 * Creates topics (those that exist already are left as they are) and resolves once every
 * partition of each has a leader (`waitForTopicLeaders`).
 */
export async function createTopicsServed(admin: Admin, topics: ITopicConfig[], timeoutMs = 30_000): Promise<void> {
  await admin.createTopics({ topics, waitForLeaders: false });
  await waitForTopicLeaders(
    admin,
    topics.map((t) => t.topic),
    timeoutMs,
  );
}

export interface EnsureResult {
  created: string[];
  /** Configs changed on existing topics to match the spec. */
  altered: string[];
}

/**
 * Creates missing topics and brings the configs of existing ones in line with the specs.
 * A partition-count mismatch is an error (it would break co-partitioning and per-key order):
 * repartitioning is an operator decision, never done silently.
 */
export async function ensureTopics(admin: Admin, specs: TopicSpec[]): Promise<EnsureResult> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.name));
  if (missing.length > 0) {
    const topics: ITopicConfig[] = missing.map((s) => ({
      topic: s.name,
      numPartitions: s.partitions,
      replicationFactor: s.replicationFactor,
      configEntries: Object.entries(s.configs).map(([name, value]) => ({ name, value })),
    }));
    await createTopicsServed(admin, topics);
  }
  const present = specs.filter((s) => existing.has(s.name));
  const altered: string[] = [];
  if (present.length > 0) {
    const metadata = await admin.fetchTopicMetadata({ topics: present.map((s) => s.name) });
    for (const t of metadata.topics) {
      const spec = present.find((s) => s.name === t.name)!;
      if (t.partitions.length !== spec.partitions) {
        throw new Error(`topic ${t.name} has ${t.partitions.length} partitions, expected ${spec.partitions}`);
      }
    }
    const described = await describeTopicConfigs(
      admin,
      present.map((s) => s.name),
    );
    const changes = present.filter((s) => Object.entries(s.configs).some(([k, v]) => described[s.name]?.[k] !== v));
    if (changes.length > 0) {
      // kafkajs has only the non-incremental alterConfigs, which replaces all of a topic's own
      // settings: keep the ones an operator set that the spec does not name (a raised
      // max.message.bytes, say), or every start would silently reset them.
      const own = await describeTopicConfigs(
        admin,
        changes.map((s) => s.name),
        { onlyOwn: true },
      );
      await admin.alterConfigs({
        validateOnly: false,
        resources: changes.map((s) => ({
          type: ConfigResourceTypes.TOPIC,
          name: s.name,
          configEntries: Object.entries({ ...own[s.name], ...s.configs }).map(([name, value]) => ({ name, value })),
        })),
      });
      altered.push(...changes.map((s) => s.name));
    }
  }
  return { created: missing.map((s) => s.name), altered };
}

/**
 * What differs between the cluster and the specs, one line per problem, each starting with the
 * topic's name: missing, partition count, replication factor, a config value. Empty when all match.
 */
export async function checkTopics(admin: Admin, specs: TopicSpec[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const problems = specs.filter((s) => !existing.has(s.name)).map((s) => `${s.name}: missing`);
  const present = specs.filter((s) => existing.has(s.name));
  if (present.length === 0) return problems;
  const metadata = await admin.fetchTopicMetadata({ topics: present.map((s) => s.name) });
  const described = await describeTopicConfigs(
    admin,
    present.map((s) => s.name),
  );
  for (const spec of present) {
    const partitions = metadata.topics.find((t) => t.name === spec.name)?.partitions ?? [];
    if (partitions.length !== spec.partitions) problems.push(`${spec.name}: ${partitions.length} partitions, expected ${spec.partitions}`);
    const replicas = Math.min(...partitions.map((p) => p.replicas.length));
    if (partitions.length > 0 && replicas !== spec.replicationFactor)
      problems.push(`${spec.name}: replication factor ${replicas}, expected ${spec.replicationFactor}`);
    for (const [key, value] of Object.entries(spec.configs)) {
      const actual = described[spec.name]?.[key];
      if (actual !== value) problems.push(`${spec.name}: ${key}=${actual ?? '(unset)'}, expected ${value}`);
    }
  }
  return problems;
}

/** A service's topics are not all there: it refuses to start (topics are created by cdp-topics). */
export class MissingTopicsError extends Error {
  constructor(readonly topics: string[]) {
    super(`missing Kafka topics: ${topics.join(', ')} (create them with cdp-topics create)`);
    this.name = 'MissingTopicsError';
  }
}

/**
 * A service's check at start: throws MissingTopicsError naming every topic of `names` the
 * cluster lacks. Changes nothing (the topics' settings belong to cdp-topics).
 */
export async function requireTopics(admin: Admin, names: string[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = names.filter((n) => !existing.has(n));
  if (missing.length > 0) throw new MissingTopicsError(missing);
}

/**
 * Topic configs by name; with `onlyOwn`, only the settings set on the topic itself (not the
 * broker defaults it inherits).
 */
export async function describeTopicConfigs(
  admin: Admin,
  topics: string[],
  { onlyOwn = false } = {},
): Promise<Record<string, Record<string, string>>> {
  const result = await admin.describeConfigs({
    includeSynonyms: false,
    resources: topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name })),
  });
  return Object.fromEntries(
    result.resources.map((r) => [
      r.resourceName,
      Object.fromEntries(
        r.configEntries.filter((e) => !onlyOwn || e.configSource === ConfigSource.TOPIC_CONFIG).map((e) => [e.configName, e.configValue]),
      ),
    ]),
  );
}
