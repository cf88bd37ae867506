import { z } from 'zod';
import { bearerToken, bool, databaseName, mysqlUrl, port, positiveInt } from './fields';

export const consulEnv = {
  /** The Consul agent's HTTP API, `host:port` or a URL. */
  CONSUL_HTTP_ADDR: z.string().min(1),
  /** Every key the services write lives under it. */
  CDP_CONSUL_PREFIX: z.string().regex(/^[A-Za-z0-9_/-]*$/, 'may contain only letters, digits, "_", "-" and "/"').default('cdp/'),
};

export const mysqlEnv = {
  MYSQL_URL: mysqlUrl(),
};

/** The control database (JobDB catalogue, delivery stats) on the MySQL of MYSQL_URL. */
export const controlDbEnv = {
  ...mysqlEnv,
  CDP_CONTROL_DB: databaseName().default('cdp_control'),
};

/** The workspace file (sources, destinations, secrets by reference), re-read while running. */
export const workspaceEnv = {
  CDP_WORKSPACE_FILE: z.string().min(1),
  WORKSPACE_POLL_INTERVAL_MS: positiveInt(2_000),
};

/** The admin API (libs/http startAdminServer): its own port; callers send ADMIN_TOKEN as Bearer (or as Basic user name). */
export const adminEnv = {
  ADMIN_PORT: port(8081),
  ADMIN_TOKEN: bearerToken(),
};

export const awsEnv = {
  AWS_REGION: z.string().min(1),
};

export const dynamodbEnv = {
  ...awsEnv,
  /** DynamoDB Local or another endpoint; AWS's regional endpoint when unset. */
  DYNAMODB_ENDPOINT: z.string().url({ message: 'must be an http(s) URL' }).optional(),
};

export const s3Env = {
  ...awsEnv,
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
  /** S3Proxy, MinIO or another S3 API; AWS's regional endpoint when unset. */
  S3_ENDPOINT: z.string().url({ message: 'must be an http(s) URL' }).optional(),
  /** `host/bucket/key` addressing, which most S3 APIs other than AWS need. */
  S3_FORCE_PATH_STYLE: bool(false),
};
