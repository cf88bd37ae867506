// For the archiver's process tests: the environment of an archiver on the harness's broker and S3Proxy.
import { LOCAL_AWS_ENV, requireEnv } from '@cdp/testkit';

export const ARCHIVER_TEST_TOKEN = 'archiver-test-admin-token-0123456789';

export interface ArchiverTestEnv {
  topicPrefix: string;
  workspaceFile: string;
  groupId: string;
  adminPort: number;
}

export function archiverTestEnv(o: ArchiverTestEnv): Record<string, string> {
  return {
    KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'),
    CDP_TOPIC_PREFIX: o.topicPrefix,
    CDP_WORKSPACE_FILE: o.workspaceFile,
    ...LOCAL_AWS_ENV,
    S3_ENDPOINT: requireEnv('S3_ENDPOINT'),
    S3_BUCKET: requireEnv('S3_BUCKET'),
    S3_FORCE_PATH_STYLE: 'true',
    ARCHIVER_GROUP_ID: o.groupId,
    ADMIN_PORT: String(o.adminPort),
    HOST: '127.0.0.1',
    ADMIN_TOKEN: ARCHIVER_TEST_TOKEN,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '500',
  };
}
