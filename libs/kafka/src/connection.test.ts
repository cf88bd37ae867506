import { checkKafkaEnv, kafkaEnv, loadConfig, z } from '@cdp/config';
import { kafkaConnection } from './client';

const schema = z.object(kafkaEnv).superRefine(checkKafkaEnv);

describe('kafkaConnection', () => {
  it('plaintext: brokers and timeouts only', () => {
    const connection = kafkaConnection(loadConfig(schema, { KAFKA_BROKERS: 'a:1,b:2', KAFKA_REQUEST_TIMEOUT_MS: '5000' }));
    expect(connection).toEqual({
      brokers: ['a:1', 'b:2'],
      ssl: undefined,
      sasl: undefined,
      connectionTimeoutMs: 3_000,
      requestTimeoutMs: 5_000,
    });
  });

  it('TLS with the system CAs, SASL SCRAM, and another cluster with the same security', () => {
    const config = loadConfig(schema, {
      KAFKA_BROKERS: 'a:9096',
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'cdp',
      KAFKA_SASL_PASSWORD: 'pw',
    });
    expect(kafkaConnection(config)).toMatchObject({
      ssl: { ca: undefined },
      sasl: { mechanism: 'scram-sha-512', username: 'cdp', password: 'pw' },
    });
    expect(kafkaConnection(config, ['b:9096'])).toMatchObject({ brokers: ['b:9096'], sasl: { mechanism: 'scram-sha-512' } });
  });
});
