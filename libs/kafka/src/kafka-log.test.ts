import { logLevel } from 'kafkajs';
import { createLogger } from '@cdp/log';
import { createKafka } from './client';
import { KafkaLogRouter } from './kafka-log';

// kafkajs's own wording for what a normal start against fresh topics logs (lib/network/
// connection.js logs the protocol error of each retried response; runner/consumer/admin others).
const NORMAL_START: Array<['ERROR' | 'WARN', string, string, Record<string, unknown>]> = [
  [
    'ERROR',
    'Connection',
    'Response Metadata(key: 3, version: 6)',
    { error: 'There is no leader for this topic-partition as we are in the middle of a leadership election', correlationId: 4 },
  ],
  [
    'ERROR',
    'Connection',
    'Response FindCoordinator(key: 10, version: 2)',
    { error: 'The group coordinator is not available', correlationId: 5 },
  ],
  [
    'ERROR',
    'Connection',
    'Response JoinGroup(key: 11, version: 5)',
    { error: "The coordinator is loading and hence can't process requests", correlationId: 6 },
  ],
  [
    'ERROR',
    'Connection',
    'Response ListOffsets(key: 2, version: 4)',
    { error: 'This server does not host this topic-partition', correlationId: 7 },
  ],
  [
    'ERROR',
    'Connection',
    'Response Produce(key: 0, version: 7)',
    { error: 'This server is not the leader for that topic-partition', correlationId: 8 },
  ],
  ['ERROR', 'Runner', 'The coordinator is not aware of this member, re-joining the group', { groupId: 'g' }],
  ['WARN', 'Runner', 'The group is rebalancing, re-joining', { groupId: 'g', error: 'The group is rebalancing, so a rejoin is needed' }],
  ['WARN', 'Admin', 'Could not create topics', { error: 'Topic with this name already exists' }],
  [
    'ERROR',
    'Connection',
    'Response InitProducerId(key: 22, version: 1)',
    {
      error: 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
      correlationId: 4,
    },
  ],
  ['WARN', 'Producer', 'Limiting retries for the idempotent producer may invalidate EoS guarantees', {}],
];

function capture() {
  const lines: Array<{ level: string; msg: string; similar?: number }> = [];
  const logger = createLogger({
    name: 'kafka-log-test',
    level: 'warn',
    destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
  });
  return { lines, logger };
}

describe('kafkajs log lines through createKafka', () => {
  it('a normal start (leader elections, coordinator loading, fresh partitions) prints no error line', () => {
    const { lines, logger } = capture();
    const kafkaLogger = createKafka({ brokers: ['127.0.0.1:9'], clientId: 't', logger }).logger();
    for (const [level, namespace, message, extra] of NORMAL_START) {
      const log = kafkaLogger.namespace(namespace);
      if (level === 'ERROR') log.error(message, extra);
      else log.warn(message, extra);
    }
    expect(lines.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it('a broker outage (hundreds of connection errors) prints one warning per window, not an error each', () => {
    const { lines, logger } = capture();
    const kafkaLogger = createKafka({ brokers: ['127.0.0.1:9'], clientId: 't', logger }).logger();
    for (let i = 0; i < 300; i++) {
      kafkaLogger
        .namespace('Connection')
        .error('Connection error: connect ECONNREFUSED 127.0.0.1:9', { broker: '127.0.0.1:9', clientId: 't' });
      kafkaLogger
        .namespace('BrokerPool')
        .error(
          'Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9',
          { retryCount: i },
        );
    }
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    // Within one window: a single warning for the kind (both wordings are connection failures).
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  });

  it('genuine errors keep their level', () => {
    const { lines, logger } = capture();
    const kafkaLogger = createKafka({ brokers: ['127.0.0.1:9'], clientId: 't', logger }).logger();
    kafkaLogger.namespace('Consumer').error('Crash: KafkaJSNonRetriableError: Topic authorization failed', { groupId: 'g' });
    kafkaLogger.namespace('Connection').error('Response SaslAuthenticate(key: 36, version: 1)', {
      error: 'Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256',
    });
    kafkaLogger
      .namespace('Consumer')
      .error('Crash: KafkaJSNumberOfRetriesExceeded: This server does not host this topic-partition', { groupId: 'g' });
    expect(lines.map((l) => l.level)).toEqual(['error', 'error', 'error']);
  });
});

describe('KafkaLogRouter', () => {
  const refused = {
    namespace: 'Connection',
    level: logLevel.ERROR,
    log: { timestamp: '', logger: 'kafkajs', message: 'Connection error: connect ECONNREFUSED 127.0.0.1:9' },
  };

  it('warns once per window and kind, with the count of lines absorbed since, and counts every line', () => {
    let now = 0;
    const counts: Record<string, number> = {};
    const router = new KafkaLogRouter({ summaryWindowMs: 10_000, now: () => now, count: (t) => void (counts[t] = (counts[t] ?? 0) + 1) });
    const levels: string[] = [];
    for (let i = 0; i < 25; i++) {
      levels.push(router.route(refused).level);
      now += 1_000; // one failure per second for 25 s
    }
    const warnings = levels.flatMap((l, i) => (l === 'warn' ? [i] : []));
    expect(warnings).toEqual([0, 10, 20]);
    expect(levels.filter((l) => l !== 'warn').every((l) => l === 'debug')).toBe(true);
    now = 20_000 + 10_000;
    const next = router.route(refused);
    expect(next).toMatchObject({ level: 'warn', type: 'connection', fields: { similar: 5 } });
    expect(next.message).toContain('5 since the warning 10 s ago');
    expect(counts).toEqual({ connection: 26 });
  });

  it('kinds have separate windows; unmatched error lines count as other and keep their level', () => {
    const counts: Record<string, number> = {};
    const router = new KafkaLogRouter({ now: () => 0, count: (t) => void (counts[t] = (counts[t] ?? 0) + 1) });
    expect(router.route(refused).level).toBe('warn');
    expect(
      router.route({ ...refused, namespace: 'Consumer', log: { ...refused.log, message: 'Restarting the consumer in 300ms' } }).level,
    ).toBe('warn');
    expect(router.route({ ...refused, log: { ...refused.log, message: 'Offset out of range, resetting to default offset' } }).level).toBe(
      'error',
    );
    expect(router.route({ ...refused, level: logLevel.INFO, log: { ...refused.log, message: 'Starting' } }).level).toBe('debug');
    expect(router.route({ ...refused, level: logLevel.DEBUG }).level).toBe('trace');
    expect(counts).toEqual({ connection: 1, 'consumer-restart': 1, other: 1 });
  });
});
