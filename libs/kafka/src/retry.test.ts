import { kafkaWorkerEnv, loadConfig, z } from '@cdp/config';
import { workerSettings } from './consumer';
import { DeadlineError } from './producer';
import { backoffMs, isRetriableError, RetriableError } from './retry';

describe('isRetriableError', () => {
  it('is true for a RetriableError, also as a cause, and for Kafka being unavailable', () => {
    expect(isRetriableError(new RetriableError('db down'))).toBe(true);
    expect(isRetriableError(new Error('write failed', { cause: new RetriableError('db down') }))).toBe(true);
    expect(isRetriableError(new DeadlineError('no answer'))).toBe(true);
    const connection = Object.assign(new Error('Connection error: ECONNREFUSED'), { name: 'KafkaJSConnectionError' });
    expect(isRetriableError(connection)).toBe(true);
    const retriableProtocol = Object.assign(new Error('leader not available'), { name: 'KafkaJSProtocolError', retriable: true });
    expect(isRetriableError(retriableProtocol)).toBe(true);
  });

  it('is false for anything else, a record Kafka refuses included', () => {
    expect(isRetriableError(new Error('invalid payload'))).toBe(false);
    expect(isRetriableError(new TypeError('x is undefined'))).toBe(false);
    expect(isRetriableError('a string')).toBe(false);
    const tooLarge = Object.assign(new Error('message too large'), { name: 'KafkaJSProtocolError', retriable: false });
    expect(isRetriableError(tooLarge)).toBe(false);
  });
});

describe('backoffMs', () => {
  it('doubles from the initial wait up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, { initialMs: 100, maxMs: 1_000 }))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffMs(1)).toBe(200);
    expect(backoffMs(100)).toBe(10_000);
  });
});

describe('workerSettings', () => {
  it('maps the kafkaWorkerEnv fragment onto the worker options, defaults and overrides', () => {
    const schema = z.object(kafkaWorkerEnv);
    expect(workerSettings(loadConfig(schema, {}))).toEqual({
      maxAttempts: 5,
      retryInitialMs: 200,
      retryMaxMs: 10_000,
      consumerConfig: { sessionTimeout: 30_000, heartbeatInterval: 3_000 },
    });
    const custom = loadConfig(schema, {
      KAFKA_WORKER_MAX_ATTEMPTS: '2',
      KAFKA_WORKER_RETRY_INITIAL_MS: '50',
      KAFKA_WORKER_RETRY_MAX_MS: '500',
      KAFKA_SESSION_TIMEOUT_MS: '6000',
    });
    expect(workerSettings(custom)).toMatchObject({
      maxAttempts: 2,
      retryInitialMs: 50,
      retryMaxMs: 500,
      consumerConfig: { sessionTimeout: 6_000 },
    });
    expect(() => loadConfig(schema, { KAFKA_WORKER_MAX_ATTEMPTS: '0' })).toThrow(/KAFKA_WORKER_MAX_ATTEMPTS/);
  });
});
