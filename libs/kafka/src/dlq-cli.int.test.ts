// cdp-dlq (dist/dlq-cli.js) as a process against the real broker, on a DLQ of 600 records of
// 8 KiB (1.6 MiB a partition: more than one fetch of kafkajs's 1 MiB per partition).
import { createLogger } from '@cdp/log';
import { requireEnv, testTopicPrefix } from '@cdp/testkit';
import { createKafka, deadLetterRecord, HEADER_STAGE, type InboundMessage } from './index';
import { createTestTopics, readTopic } from './testing';
import { runKafkaCli, type CliResult } from './testing/run-cli';

const logger = createLogger({ name: 'dlq-cli-int', level: 'warn' });
const PARTITIONS = 3;
const PER_PARTITION = 200;
const PADDING = 'x'.repeat(8 * 1024);

function cdpDlq(prefix: string, args: string[]): Promise<CliResult> {
  return runKafkaCli('dlq-cli.js', args, { CDP_TOPIC_PREFIX: prefix });
}

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('cdp-dlq against the real broker', () => {
  const prefix = testTopicPrefix('dlqcli');
  const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'dlq-cli-int', logger });
  let names: Awaited<ReturnType<typeof createTestTopics>>;

  beforeAll(async () => {
    names = await createTestTopics(kafka, prefix, { partitions: PARTITIONS });
    // Dead letters as the stages write them: even source offsets refused by dedup (from
    // ingest), odd ones by transform (from deduped). DLQ partition p gets source partition p.
    const producer = kafka.producer({ transactionalId: `${prefix}seed`, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let p = 0; p < PARTITIONS; p += 1) {
      const letters = Array.from({ length: PER_PARTITION }, (_, i) => {
        const n = p * PER_PARTITION + i;
        const stage = n % 2 === 0 ? 'dedup' : 'transform';
        const original: InboundMessage = {
          topic: stage === 'dedup' ? names.ingest : names.deduped,
          partition: p,
          offset: String(1000 + n),
          key: `src-1:msg-${n}`,
          value: Buffer.from(JSON.stringify({ messageId: `msg-${n}`, padding: PADDING })),
          headers: { 'x-cdp-trace': `trace-${n}` },
          timestamp: String(Date.now()),
        };
        return { ...deadLetterRecord(original, stage, new Error(`refused record ${n}`)), partition: p };
      });
      // In transactions of 50, as dedup writes them: the DLQ holds transaction markers too.
      for (let i = 0; i < letters.length; i += 50) {
        const txn = await producer.transaction();
        await txn.send({ topic: names.dlq, messages: letters.slice(i, i + 50), acks: -1 });
        await txn.commit();
      }
    }
    // A second DLQ copy of dead letter 0 (a retried dead-letter write) and a binary value.
    await producer.disconnect();
    const copy = (await readTopic(kafka, names.dlq, PARTITIONS * PER_PARTITION)).find((r) => r.partition === 0 && r.offset === '0')!;
    const plain = kafka.producer();
    await plain.connect();
    await plain.send({
      topic: names.dlq,
      messages: [
        { partition: 0, key: copy.key, value: copy.value, headers: copy.headers },
        { partition: 1, key: null, value: Buffer.from([0, 159, 146, 150]), headers: { [HEADER_STAGE]: 'director' } },
        // A copy whose value a stage left out (above the DLQ's limit).
        {
          partition: 2,
          key: 'src-1:big',
          value: null,
          headers: {
            [HEADER_STAGE]: 'oversize',
            'cdp-source-topic': names.identified,
            'cdp-source-partition': '2',
            'cdp-source-offset': '7',
          },
        },
      ],
      acks: -1,
    });
    await plain.disconnect();
  });

  it('lists every record with its stage, origin and key, and filters by stage, topic, time and offsets', async () => {
    const total = PARTITIONS * PER_PARTITION + 3;
    const all = await cdpDlq(prefix, ['list']);
    expect(all.code).toBe(0);
    expect(lines(all.stdout)).toHaveLength(total);
    expect(all.stderr).toContain(`${total} of ${total} records shown`);
    expect(all.stdout).toMatch(
      new RegExp(`^0:0  \\S+Z  pending  dedup  ${names.ingest.replace(/\./g, '\\.')}/0@1000  key=src-1:msg-0  refused record 0$`, 'm'),
    );
    expect(all.stdout).toContain('director  (unknown)  key=(null)');

    const transform = await cdpDlq(prefix, ['list', '--stage', 'transform', '--json']);
    const records = lines(transform.stdout).map(
      (l) =>
        JSON.parse(l) as {
          stage: string;
          source: { topic: string; partition: number; offset: string };
          headers: Record<string, string>;
          value: string;
        },
    );
    expect(records).toHaveLength(300);
    expect(records.every((r) => r.stage === 'transform' && r.source.topic === names.deduped)).toBe(true);
    expect(Object.keys(records[0].headers)).toEqual(['x-cdp-trace']);
    expect(JSON.parse(records[0].value)).toMatchObject({ padding: PADDING });

    expect(lines((await cdpDlq(prefix, ['list', '--topic', names.ingest])).stdout)).toHaveLength(301);
    const span = await cdpDlq(prefix, ['list', '--offsets', '2:10-14,1:199']);
    expect(lines(span.stdout).map((l) => l.split('  ')[0])).toEqual(['1:199', '2:10', '2:11', '2:12', '2:13', '2:14']);
    expect(lines((await cdpDlq(prefix, ['list', '--since', '2h', '--limit', '7'])).stdout)).toHaveLength(7);
    expect(lines((await cdpDlq(prefix, ['list', '--until', '2h'])).stdout)).toHaveLength(0);
  });

  it('shows a record in full: headers, origin and an indented JSON value; binary as base64', async () => {
    // Partition 1: 200 records in 4 transactions (a marker after each 50), then the binary one.
    const shown = await cdpDlq(prefix, ['show', '0:3', '1:204']);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`${names.dlq} 0:3\n`);
    expect(shown.stdout).toContain('  stage          transform\n');
    expect(shown.stdout).toContain('  error          refused record 3\n');
    expect(shown.stdout).toContain(`  original       ${names.deduped} partition 0 offset 1003\n`);
    expect(shown.stdout).toContain('  header         x-cdp-trace: trace-3\n');
    expect(shown.stdout).toContain('    {\n      "messageId": "msg-3",');
    expect(shown.stdout).toContain('    base64:AJ+Slg==');
    const missing = await cdpDlq(prefix, ['show', '2:99999']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('2:99999: no record there');
  });

  it('re-sends chosen records to their original topic and partition with key and headers, once', async () => {
    const dryRun = await cdpDlq(prefix, ['resend', '--stage', 'dedup']);
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toContain(`would re-send 301 records:\n  301 dedup from ${names.ingest}\nrun again with --yes`);
    expect(dryRun.stdout).not.toContain('resent');

    const resend = await cdpDlq(prefix, ['resend', '--stage', 'dedup', '--yes']);
    expect(resend.code).toBe(0);
    expect(resend.stdout).toContain('resent 300 records to their original topics (1 repeated DLQ copies of them marked, not sent again)');
    // Not a terminal: the progress bar prints a line at each tenth, the last at 100 %.
    expect(resend.stderr).toContain('resending: 301/301 100%');
    expect(lines(resend.stderr).filter((l) => l.startsWith('resending:')).length).toBeLessThanOrEqual(10);

    // Nothing was on ingest before (the dry run wrote nothing): everything there was re-sent.
    const ingest = await readTopic(kafka, names.ingest, 300, { quietMs: 1_000 });
    expect(ingest).toHaveLength(300);
    for (const message of ingest) {
      const n = Number(/msg-(\d+)/.exec(message.key!)![1]);
      expect(n % 2).toBe(0);
      expect(message.partition).toBe(Math.floor(n / PER_PARTITION));
      expect(message.headers).toEqual({ 'x-cdp-trace': `trace-${n}` });
      expect(JSON.parse(message.value!.toString())).toEqual({ messageId: `msg-${n}`, padding: PADDING });
    }
    expect(new Set(ingest.map((m) => m.key)).size).toBe(300);

    const again = await cdpDlq(prefix, ['resend', '--stage', 'dedup', '--yes']);
    expect(again.stdout).toContain('301 selected records were already handled; left alone');
    expect(again.stdout).toContain('resent 0 records');
    expect(await readTopic(kafka, names.ingest, 300, { quietMs: 1_000 })).toHaveLength(300);
    expect((await cdpDlq(prefix, ['list', '--pending'])).stderr).toContain('302 of 302 records not yet handled shown');
  });

  it('discards records with a reason; a record with no origin or no value is not re-sent', async () => {
    const discard = await cdpDlq(prefix, ['discard', '--stage', 'transform', '--offsets', '0:0-49', '--reason', 'bad test data', '--yes']);
    expect(discard.code).toBe(0);
    expect(discard.stdout).toContain('discarded 25 records');
    const shown = await cdpDlq(prefix, ['show', '0:1']);
    expect(shown.stdout).toMatch(/ {2}state {10}discarded \S+Z \(bad test data\)/);
    expect((await cdpDlq(prefix, ['list', '--pending'])).stderr).toContain('277 of 277 records not yet handled shown');

    const orphan = await cdpDlq(prefix, ['resend', '--stage', 'director', '--yes']);
    expect(orphan.code).toBe(1);
    expect(orphan.stderr).toContain('1:204: no original topic (no cdp-source-topic header); not re-sent');
    const valueless = await cdpDlq(prefix, ['resend', '--stage', 'oversize', '--yes']);
    expect(valueless.code).toBe(1);
    expect(valueless.stderr).toContain('2:204: no value in the DLQ copy; not re-sent (discard it)');
    expect(valueless.stdout).toContain('resent 0 records');
  });

  it('refuses bad arguments with the usage and exit 2', async () => {
    for (const args of [
      [],
      ['list', '--since', 'yesterday'],
      ['list', '--offsets', '1:9-3'],
      ['resend'],
      ['show'],
      ['list', '--limit', '0'],
    ]) {
      const result = await cdpDlq(prefix, args);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('usage: cdp-dlq');
    }
  });
});
