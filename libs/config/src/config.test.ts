import { baseEnv, bool, ConfigError, hostPortList, kafkaEnv, loadConfig, mysqlUrl, port, positiveInt, z } from './index';

const schema = z.object({
  ...baseEnv,
  ...kafkaEnv,
  PORT: port(8080),
  MYSQL_URL: mysqlUrl(),
  BATCH_MAX_BYTES: positiveInt(500_000),
  SPOOL_ENABLED: bool(true),
});

describe('loadConfig', () => {
  const valid = { KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.2:9093', MYSQL_URL: 'mysql://root@127.0.0.1:3306' };

  it('applies defaults and coerces types', () => {
    const cfg = loadConfig(schema, valid);
    expect(cfg).toMatchObject({ PORT: 8080, OPS_PORT: 9090, CDP_TOPIC_PREFIX: 'cdp.', SPOOL_ENABLED: true, BATCH_MAX_BYTES: 500000 });
    expect(cfg.KAFKA_BROKERS).toEqual(['127.0.0.1:9092', '127.0.0.2:9093']);
  });

  it('names a missing variable', () => {
    expect(() => loadConfig(schema, { MYSQL_URL: valid.MYSQL_URL })).toThrow(/KAFKA_BROKERS: is required/);
  });

  it('names every malformed variable without echoing values', () => {
    try {
      loadConfig(schema, { ...valid, PORT: 'eighty', SPOOL_ENABLED: 'yes', MYSQL_URL: 'nope-s3cr3t' });
      throw new Error('expected failure');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const message = (error as Error).message;
      expect(message).toMatch(/PORT: /);
      expect(message).toMatch(/SPOOL_ENABLED: must be true, false, 1 or 0/);
      expect(message).toMatch(/MYSQL_URL: must be a URL/);
      expect(message).not.toContain('nope-s3cr3t');
    }
  });

  it('rejects a broker list without ports', () => {
    const r = hostPortList().safeParse('kafka');
    expect(r.success).toBe(false);
  });
});
