import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  adminEnv,
  checkDirectorRpcServerEnv,
  checkKafkaEnv,
  checkMysqlEnv,
  ConfigError,
  consulEnv,
  controlDbEnv,
  directorRpcServerEnv,
  kafkaEnv,
  loadConfig,
  mysqlConnectionUrl,
  mysqlEnv,
  s3Env,
  z,
} from './index';

const kafkaSchema = z.object(kafkaEnv).superRefine(checkKafkaEnv);
const BROKERS = { KAFKA_BROKERS: '127.0.0.1:9092' };

function failure(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('Kafka fragment', () => {
  it('defaults to plaintext without SASL and the client timeouts', () => {
    const cfg = loadConfig(kafkaSchema, BROKERS);
    expect(cfg).toMatchObject({ KAFKA_SSL: false, KAFKA_CONNECTION_TIMEOUT_MS: 3_000, KAFKA_REQUEST_TIMEOUT_MS: 30_000 });
    expect(cfg.KAFKA_SASL_MECHANISM).toBeUndefined();
  });

  it('takes SCRAM with its user and password', () => {
    const cfg = loadConfig(kafkaSchema, {
      ...BROKERS,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'cdp',
      KAFKA_SASL_PASSWORD: 'pw',
    });
    expect(cfg).toMatchObject({ KAFKA_SASL_MECHANISM: 'scram-sha-512', KAFKA_SASL_USERNAME: 'cdp', KAFKA_SASL_PASSWORD: 'pw' });
  });

  it('names the missing SASL password without printing the user or the password', () => {
    const message = failure(() =>
      loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'someone' }),
    );
    expect(message).toContain('KAFKA_SASL_PASSWORD: is required (with KAFKA_SASL_MECHANISM=scram-sha-256)');
    expect(message).not.toContain('someone');
  });

  it('wants a mechanism when credentials are given, and never echoes the password', () => {
    const message = failure(() => loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2-secret' }));
    expect(message).toContain('KAFKA_SASL_MECHANISM: is required (when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set)');
    expect(message).not.toContain('hunter2-secret');
  });

  it('refuses an unknown mechanism naming the choices', () => {
    expect(failure(() => loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SASL_MECHANISM: 'gssapi' }))).toContain(
      'KAFKA_SASL_MECHANISM: must be one of plain, scram-sha-256, scram-sha-512',
    );
  });

  describe('TLS CA file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-config-'));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

    it('reads the PEM at load', () => {
      const file = path.join(dir, 'ca.pem');
      fs.writeFileSync(file, pem);
      const cfg = loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: file });
      expect(cfg.KAFKA_SSL_CA_FILE).toEqual({ file, contents: pem });
    });

    it('names a CA file that cannot be read or is not PEM', () => {
      const text = path.join(dir, 'not-pem.txt');
      fs.writeFileSync(text, 'hello');
      expect(
        failure(() => loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: path.join(dir, 'missing.pem') })),
      ).toContain('KAFKA_SSL_CA_FILE: cannot be read (ENOENT)');
      expect(failure(() => loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SSL: 'true', KAFKA_SSL_CA_FILE: text }))).toContain(
        'KAFKA_SSL_CA_FILE: is not a PEM file',
      );
    });

    it('refuses a CA file without KAFKA_SSL', () => {
      const file = path.join(dir, 'ca2.pem');
      fs.writeFileSync(file, pem);
      expect(failure(() => loadConfig(kafkaSchema, { ...BROKERS, KAFKA_SSL_CA_FILE: file }))).toContain(
        'KAFKA_SSL_CA_FILE: is set but KAFKA_SSL is not true',
      );
    });
  });
});

describe('director RPC server fragment', () => {
  const schema = z.object(directorRpcServerEnv).superRefine(checkDirectorRpcServerEnv);
  it('needs a token unless insecure mode is asked for', () => {
    expect(failure(() => loadConfig(schema, {}))).toContain('DIRECTOR_RPC_TOKEN: is required');
    expect(loadConfig(schema, { DIRECTOR_RPC_INSECURE_NO_TOKEN: 'true' }).PORT).toBe(8080);
  });
  it('never prints a token that is too short', () => {
    const message = failure(() => loadConfig(schema, { DIRECTOR_RPC_TOKEN: 'short-secret' }));
    expect(message).toContain('DIRECTOR_RPC_TOKEN: must be at least 16 visible ASCII characters');
    expect(message).not.toContain('short-secret');
  });
});

describe('MySQL fragment', () => {
  const schema = z.object(mysqlEnv).superRefine(checkMysqlEnv);
  const MYSQL_URL = 'mysql://cdp:p%40ss@db.example:3306';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-config-mysql-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sslOf = (url: string) => new URL(url).searchParams.get('ssl');

  it('leaves the URL alone without TLS', () => {
    expect(mysqlConnectionUrl(loadConfig(schema, { MYSQL_URL }))).toBe(MYSQL_URL);
  });

  it('puts TLS into the URL mysql2 reads: verified with the system CAs, or with the CA file', () => {
    const url = mysqlConnectionUrl(loadConfig(schema, { MYSQL_URL, MYSQL_SSL: 'true' }));
    expect(sslOf(url)).toBe('{}');
    expect(new URL(url).password).toBe('p%40ss');
    const ca = path.join(dir, 'rds-ca.pem');
    const pem = '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n';
    fs.writeFileSync(ca, pem);
    expect(
      JSON.parse(sslOf(mysqlConnectionUrl(loadConfig(schema, { MYSQL_URL, MYSQL_SSL: 'true', MYSQL_SSL_CA_FILE: ca }))) ?? ''),
    ).toEqual({ ca: pem });
  });

  it('refuses a CA file without MYSQL_SSL, and never prints the URL', () => {
    const ca = path.join(dir, 'ca.pem');
    fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
    expect(failure(() => loadConfig(schema, { MYSQL_URL, MYSQL_SSL_CA_FILE: ca }))).toContain(
      'MYSQL_SSL_CA_FILE: is set but MYSQL_SSL is not true',
    );
    expect(failure(() => loadConfig(schema, { MYSQL_URL: 'nope p@ss' }))).not.toContain('p@ss');
  });
});

describe('store fragments', () => {
  it('control DB: MYSQL_URL and the database, defaulted', () => {
    expect(loadConfig(z.object(controlDbEnv), { MYSQL_URL: 'mysql://root@127.0.0.1:3306' }).CDP_CONTROL_DB).toBe('cdp_control');
    expect(
      failure(() => loadConfig(z.object(controlDbEnv), { MYSQL_URL: 'mysql://root@127.0.0.1:3306', CDP_CONTROL_DB: 'bad-name' })),
    ).toContain('CDP_CONTROL_DB: ');
  });
  it('Consul: the address and the key prefix are checked as @cdp/consul uses them', () => {
    const consul = z.object(consulEnv);
    expect(loadConfig(consul, { CONSUL_HTTP_ADDR: 'http://consul:8500' })).toEqual({
      CONSUL_HTTP_ADDR: 'http://consul:8500',
      CDP_CONSUL_PREFIX: 'cdp/',
    });
    expect(loadConfig(consul, { CONSUL_HTTP_ADDR: 'consul', CDP_CONSUL_PREFIX: 'team_a/cdp/' }).CDP_CONSUL_PREFIX).toBe('team_a/cdp/');
    expect(loadConfig(consul, { CONSUL_HTTP_ADDR: 'consul', CDP_CONSUL_PREFIX: '' }).CDP_CONSUL_PREFIX).toBe('');
    for (const prefix of ['cdp', '/cdp/', 'cdp//', 'c d/']) {
      expect(failure(() => loadConfig(consul, { CONSUL_HTTP_ADDR: 'consul', CDP_CONSUL_PREFIX: prefix }))).toContain(
        'CDP_CONSUL_PREFIX: empty, or segments',
      );
    }
    expect(failure(() => loadConfig(consul, { CONSUL_HTTP_ADDR: 'unix:///consul.sock' }))).toContain('CONSUL_HTTP_ADDR: want host:port');
    expect(failure(() => loadConfig(consul, {}))).toContain('CONSUL_HTTP_ADDR: is required');
  });
  it('admin: port defaulted, token required', () => {
    expect(failure(() => loadConfig(z.object(adminEnv), {}))).toContain('ADMIN_TOKEN: is required');
    expect(loadConfig(z.object(adminEnv), { ADMIN_TOKEN: 'a'.repeat(16) }).ADMIN_PORT).toBe(8081);
  });
  it('S3: bucket and region required, endpoint optional', () => {
    const cfg = loadConfig(z.object(s3Env), {
      AWS_REGION: 'us-east-1',
      S3_BUCKET: 'cdp-archive',
      S3_ENDPOINT: 'http://127.0.0.1:9000',
      S3_FORCE_PATH_STYLE: 'true',
    });
    expect(cfg).toMatchObject({ S3_BUCKET: 'cdp-archive', S3_FORCE_PATH_STYLE: true });
    expect(failure(() => loadConfig(z.object(s3Env), { AWS_REGION: 'us-east-1', S3_BUCKET: 'Bad_Bucket' }))).toContain(
      'S3_BUCKET: must be an S3 bucket name',
    );
  });
});
