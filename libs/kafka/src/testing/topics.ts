import type { Kafka } from 'kafkajs';
import { ensureTopics, topicNames, topicSpecs, TOPIC_ROLES, type TopicNames, type TopicRole } from '../topics';

export interface TestTopicsOptions {
  /** Partitions of every topic (default 1). */
  partitions?: number;
  /** Which roles to create (default all). */
  roles?: readonly TopicRole[];
  /** Configs added to a role's spec (e.g. a smaller max.message.bytes). */
  configs?: Partial<Record<TopicRole, Record<string, string>>>;
}

/**
 * Creates the pipeline's topics under `prefix` (testkit's `testTopicPrefix(label)`, so a run's
 * leftovers are recognised) with replication 1, as the single test broker needs, and returns
 * every role's name.
 */
export async function createTestTopics(kafka: Kafka, prefix: string, options: TestTopicsOptions = {}): Promise<TopicNames> {
  const specs = topicSpecs({ prefix, replicationFactor: 1, defaultPartitions: options.partitions ?? 1 });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(
      admin,
      (options.roles ?? TOPIC_ROLES).map((role) => ({ ...specs[role], configs: { ...specs[role].configs, ...options.configs?.[role] } })),
    );
  } finally {
    await admin.disconnect();
  }
  return topicNames(prefix);
}
