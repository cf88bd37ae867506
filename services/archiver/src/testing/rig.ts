// For the archiver's process tests: the pipeline's topics on the harness's broker, a producer,
// an S3 client on S3Proxy and a workspace file, which each test sets up before its archiver.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { encodeEnvelope, regulationKey, type Envelope, type RegulationType } from '@cdp/events';
import { BatchingProducer, createKafka, type Kafka, type TopicNames } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { localS3ClientConfig, requireEnv, testTopicPrefix } from '@cdp/testkit';
import { hourOf } from '../layout';
import type { ArchiveRecord } from '../writer';
import { archiverTestEnv } from './env';

export interface ArchiverRig {
  kafka: Kafka;
  topicPrefix: string;
  topics: TopicNames;
  producer: BatchingProducer;
  s3: S3Client;
  bucket: string;
  /** A temporary folder (removed by `close`); the workspace file is in it. */
  dir: string;
  workspaceFile: string;
  /** The environment of an archiver process on this rig. */
  archiverEnv(groupId: string, adminPort: number): Record<string, string>;
  /** A regulation of a user on cdp.regulations, keyed as identity publishes it (space `main` unless given). */
  publishRegulation(regulation: { regulationId: string; type: RegulationType; userId: string; spaceId?: string }): Promise<void>;
  /** Disconnects the producer and the S3 client, removes the folder. */
  close(): Promise<void>;
}

/**
 * The rig of one test file: topics under a fresh prefix named after `label`, `partitions` each,
 * and a workspace with `sources` (write key `wk_<id>`) and their spaces.
 */
export async function startArchiverRig(
  label: string,
  options: { partitions: number; sources: Array<{ id: string; name: string; spaceId: string }> },
): Promise<ArchiverRig> {
  const logger = createLogger({ name: `${label}-test`, level: 'warn' });
  const kafka = createKafka({ brokers: requireEnv('KAFKA_BROKERS').split(','), clientId: `${label}-test`, logger });
  const topicPrefix = testTopicPrefix(label);
  const topics = await createTestTopics(kafka, topicPrefix, { partitions: options.partitions });
  const producer = new BatchingProducer(kafka, { logger });
  await producer.connect();
  const s3 = new S3Client(localS3ClientConfig(requireEnv('S3_ENDPOINT')));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-test-`));
  const workspaceFile = path.join(dir, 'workspace.json');
  const spaces = [...new Set(options.sources.map((s) => s.spaceId))].map((id) => ({ id, name: id }));
  const sources = options.sources.map((s) => ({ ...s, writeKeys: [`wk_${s.id}`] }));
  fs.writeFileSync(workspaceFile, JSON.stringify({ spaces, sources }));
  return {
    kafka,
    topicPrefix,
    topics,
    producer,
    s3,
    bucket: requireEnv('S3_BUCKET'),
    dir,
    workspaceFile,
    archiverEnv: (groupId, adminPort) => archiverTestEnv({ topicPrefix, workspaceFile, groupId, adminPort }),
    publishRegulation: async ({ spaceId = 'main', ...rest }) => {
      const value = { ...rest, spaceId, requestedAt: new Date().toISOString() };
      await producer.send(topics.regulations, [{ key: regulationKey(spaceId, rest.userId), value: JSON.stringify(value) }]);
    },
    close: async () => {
      await producer.disconnect();
      s3.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An envelope as the archiver's writer takes it (for tests that write an archive directly):
 * undelivered when it names a destinationId, raw otherwise; the message's userId kept.
 */
export function archiveRecord(offset: number, envelope: Envelope & { destinationId?: string }): ArchiveRecord {
  const { sourceId, receivedAt, destinationId } = envelope;
  return {
    offset: String(offset),
    line: encodeEnvelope(envelope),
    receivedAt,
    userId: envelope.message.userId,
    group: { kind: destinationId === undefined ? 'raw' : 'undelivered', sourceId, destinationId, hour: hourOf(receivedAt) },
  };
}
