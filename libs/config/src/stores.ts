import { CONSUL_PREFIX, parseConsulAddr } from '@cdp/consul';
import { z } from 'zod';
import { bearerToken, bool, databaseName, mysqlUrl, pemFile, port, positiveInt, secret } from './fields';

export const consulEnv = {
  /** The Consul agent's HTTP API, `host:port` or a URL. */
  CONSUL_HTTP_ADDR: z.string().refine(
    (addr) => {
      try {
        parseConsulAddr(addr);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'want host:port, http(s)://host:port or a bare host' },
  ),
  /**
   * ACL token sent with every request (`X-Consul-Token`), from a Secret; its policy needs
   * `key_prefix "<CDP_CONSUL_PREFIX>"` and `session_prefix ""` write. Unset: none is sent (the
   * agent's default or anonymous token applies).
   */
  CONSUL_HTTP_TOKEN: secret().optional(),
  /** Every key the services write lives under it. */
  CDP_CONSUL_PREFIX: z
    .string()
    .regex(CONSUL_PREFIX, 'empty, or segments of letters, digits, "_" and "-" each ending with "/" (e.g. "cdp/")')
    .default('cdp/'),
};

/** A MySQL server; connect with `mysqlConnectionUrl(config)`, which carries the TLS settings. */
export const mysqlEnv = {
  /** `mysql://user:pass@host:port`, from a Secret. */
  MYSQL_URL: mysqlUrl(),
  /** TLS to MySQL (RDS, Aurora, Cloud SQL), checked against the system's CAs unless MYSQL_SSL_CA_FILE is set. */
  MYSQL_SSL: bool(false),
  /** PEM bundle of the CA that signed the server's certificate (e.g. RDS's); needs MYSQL_SSL=true. */
  MYSQL_SSL_CA_FILE: pemFile().optional(),
};

type MysqlEnv = z.output<z.ZodObject<typeof mysqlEnv>>;

export function checkMysqlEnv(env: Pick<MysqlEnv, 'MYSQL_SSL' | 'MYSQL_SSL_CA_FILE'>, ctx: z.RefinementCtx): void {
  if (env.MYSQL_SSL_CA_FILE !== undefined && !env.MYSQL_SSL) {
    ctx.addIssue({ code: 'custom', path: ['MYSQL_SSL_CA_FILE'], message: 'is set but MYSQL_SSL is not true' });
  }
}

/**
 * MYSQL_URL with the TLS settings in the `ssl` parameter mysql2 reads from a connection URL
 * (`ssl={}`: TLS with the system's CAs, verified; `{"ca": pem}`: that CA), so every place that
 * opens a connection or pool from the URL gets them.
 */
export function mysqlConnectionUrl(config: MysqlEnv): string {
  if (!config.MYSQL_SSL) return config.MYSQL_URL;
  const url = new URL(config.MYSQL_URL);
  url.searchParams.set('ssl', JSON.stringify(config.MYSQL_SSL_CA_FILE ? { ca: config.MYSQL_SSL_CA_FILE.contents } : {}));
  return url.toString();
}

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
