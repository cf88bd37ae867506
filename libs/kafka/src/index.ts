export {
  createKafka,
  FETCH_MAX_WAIT_MS,
  isKafkaAuthenticationError,
  Kafka,
  kafkaConnection,
  type KafkaClientOptions,
  type KafkaConnection,
} from './client';
export {
  CommitAfterWorkConsumer,
  toInbound,
  workerSettings,
  type BatchContext,
  type CommitAfterWorkConsumerOptions,
  type Decoded,
  type InboundMessage,
} from './consumer';
export { boundedDeadLetter, deadLetterRecord, DeadLetterWriter, type DeadLetter, type DeadLetterWriterOptions } from './dead-letter';
export {
  CompactedTopicFollower,
  CompactedTopicMap,
  type CompactedTopicFollowerOptions,
  type CompactedTopicMapOptions,
  type FollowedRecord,
} from './follower';
export { backoffMs, isRetriableError, RetriableError, type BackoffOptions } from './retry';
export * from './headers';
export {
  exceedsLimit,
  PUBLISH_MARGIN_BYTES,
  recordBytes,
  recordRefusal,
  RECORD_BATCH_OVERHEAD_BYTES,
  sendSplit,
  splitByBytes,
  topicMaxMessageBytes,
  type SizedMessage,
} from './limits';
export { isGroupMembershipError, keepMembership } from './membership';
export { javaCompatiblePartitioner, murmur2 } from './partitioner';
export { BatchingProducer, DeadlineError, withDeadline, type BatchingProducerOptions, type OutboundMessage } from './producer';
export {
  checkTopics,
  createTopicsServed,
  describeTopicConfigs,
  ensureTopics,
  MissingTopicsError,
  requireTopics,
  topicNames,
  topicsCliEnv,
  topicSettings,
  topicSpecs,
  TOPIC_ROLES,
  waitForTopicLeaders,
  type EnsureResult,
  type TopicNames,
  type TopicRole,
  type TopicSettings,
  type TopicSpec,
} from './topics';
export { err, out, runCli, UsageError } from './cli';
export { RegulationReporter, type RegulationReporterOptions } from './regulation-status';
