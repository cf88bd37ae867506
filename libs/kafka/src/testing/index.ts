// Test helpers over the real broker (`@cdp/kafka/testing`): not part of what services ship.
export { readTopic, TopicCollector, type WaitForCountOptions } from './collector';
export { createTestTopics, type TestTopicsOptions } from './topics';
