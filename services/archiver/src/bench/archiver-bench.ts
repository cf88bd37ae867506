// pnpm bench:archiver — the archiver's rate on this box, with Kafka and S3Proxy started and
// stopped here: (1) events/s archived from cdp.deduped to S3 (read, gzip, upload, manifest,
// commit) against the same run's raw S3 PutObject rate for objects of the same sizes at the
// same concurrency; (2) replay events/s from those objects back into cdp.deduped against the
// raw Kafka produce rate of the same records. Ends with one JSON line.
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { encodeEnvelope, type Envelope } from '@cdp/events';
import { BatchingProducer, createKafka } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { sleep } from '@cdp/lifecycle';
import { createLogger } from '@cdp/log';
import { registry } from '@cdp/metrics';
import { localS3ClientConfig, metricValue, startInfra, stopInfra, testTopicPrefix } from '@cdp/testkit';
import { Archiver } from '../archiver';
import { ReplayStore } from '../replay-store';
import { Replayer } from '../replayer';
import { readManifest } from '../reader';
import { selectRecord } from '../select';
import { ArchiveWriter } from '../writer';

const EVENTS = Number(process.env.BENCH_ARCHIVER_EVENTS ?? 60_000);
const PARTITIONS = 4;
const FLUSH_BYTES = Number(process.env.BENCH_ARCHIVER_FLUSH_BYTES ?? 2 * 1024 * 1024);
const LIMIT_MS = 240_000;
const SOURCE = 'bench';
const HOUR = '2026-12-01T10';
const NEXT_HOUR = '2026-12-01T11:00:00Z';

const gzip = promisify(gzipCallback);
const log = (line: string) => process.stderr.write(`${line}\n`);

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + LIMIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not done within ${LIMIT_MS} ms`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  const infra = await startInfra(['kafka', 's3']);
  const logger = createLogger({ name: 'archiver-bench', level: 'warn' });
  try {
    const kafka = createKafka({ brokers: infra.env.KAFKA_BROKERS.split(','), clientId: 'archiver-bench', logger });
    const topics = await createTestTopics(kafka, testTopicPrefix('archbench'), { partitions: PARTITIONS });
    const s3 = new S3Client(localS3ClientConfig(infra.env.S3_ENDPOINT));
    const bucket = infra.env.S3_BUCKET;

    // Events like a track call with a few properties (~600 bytes of JSON).
    const records = Array.from({ length: EVENTS }, (_, i) => {
      const messageId = `e${i}`;
      const receivedAt = `${HOUR}:${String(Math.floor((i / EVENTS) * 60)).padStart(2, '0')}:00.000Z`;
      const message = {
        type: 'track',
        event: 'Product Viewed',
        messageId,
        userId: `u${i % 5000}`,
        anonymousId: `a-${i % 7000}`,
        timestamp: receivedAt,
        properties: { product_id: `p${i % 900}`, price: (i % 97) + 0.99, currency: 'USD', category: 'shoes', name: `Product ${i % 900}` },
        context: {
          ip: '127.0.0.1',
          userAgent: 'Mozilla/5.0 (X11; Linux x86_64) bench',
          library: { name: 'analytics-node', version: '6.2.0' },
        },
      } as Envelope['message'];
      return { key: `${SOURCE}:${messageId}`, value: encodeEnvelope({ v: 1, sourceId: SOURCE, messageId, receivedAt, message }) };
    });
    const bytes = records.reduce((n, r) => n + r.value.length, 0);
    log(`${EVENTS} events, ${(bytes / 1e6).toFixed(1)} MB of JSON, ${PARTITIONS} partitions, flush at ${FLUSH_BYTES} bytes`);

    // Baseline of the replay: the raw produce rate of the same records.
    const producer = new BatchingProducer(kafka, { logger });
    await producer.connect();
    let t0 = Date.now();
    for (let i = 0; i < records.length; i += 5_000) await producer.send(topics.deduped, records.slice(i, i + 5_000));
    const produceRate = Math.round(EVENTS / ((Date.now() - t0) / 1000));
    log(`raw Kafka produce: ${produceRate} events/s`);
    await producer.disconnect();

    // (1) Archive: from the archiver's start until every event is in an uploaded object.
    const writer = new ArchiveWriter({ client: s3, bucket, partSizeBytes: 8 * 1024 * 1024 });
    const select = { spaceOf: () => undefined, regulation: () => undefined };
    const archiver = new Archiver({
      kafka,
      groupId: 'archiver-bench',
      topics: { [topics.deduped]: 'raw' },
      dlqTopic: topics.dlq,
      writer,
      select,
      logger,
      flushBytes: FLUSH_BYTES,
      flushAgeMs: 2_000,
      partitionsConcurrently: PARTITIONS,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
    });
    const written = async () => metricValue(await registry.metrics(), 'cdp_archiver_records_written_total', { kind: 'raw' });
    await archiver.start();
    // Timed from the group join (kafkajs's join and first fetch are not the archiver's work).
    await until('join', async () => archiver.readiness().ok);
    t0 = Date.now();
    await until('archive', async () => (await written()) >= EVENTS);
    const archiveMs = Date.now() - t0;
    const archiveRate = Math.round(EVENTS / (archiveMs / 1000));
    await archiver.stop();
    await archiver.close();
    const entries = await readManifest(s3, bucket, SOURCE, HOUR);
    const objectBytes = entries.map((e) => e.bytes);
    const meanBytes = Math.round(objectBytes.reduce((a, b) => a + b, 0) / objectBytes.length);
    log(
      `archiver: ${archiveRate} events/s (${EVENTS} in ${archiveMs} ms, ${entries.length} objects, mean ${(meanBytes / 1e3).toFixed(0)} kB gzip)`,
    );

    // Baseline: raw PutObject of objects of the same sizes (random bytes), PARTITIONS at a time.
    const bodies = objectBytes.map((n) => randomBytes(n));
    t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: PARTITIONS }, async () => {
        for (let i = next++; i < bodies.length; i = next++)
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `bench-raw/${i}`, Body: bodies[i] }));
      }),
    );
    const putMs = Date.now() - t0;
    const putEventsRate = Math.round(EVENTS / (putMs / 1000));
    log(
      `raw S3 PutObject of the same ${bodies.length} objects: ${Math.round(bodies.length / (putMs / 1000))} objects/s = ${putEventsRate} events/s`,
    );

    // Where the archiver's time goes on this CPU: decoding each record (envelope schema) and gzip.
    let cpu = Date.now();
    for (const r of records) selectRecord('raw', '0', Buffer.from(r.value), select);
    const decodeRate = Math.round(EVENTS / ((Date.now() - cpu) / 1000));
    cpu = Date.now();
    for (let i = 0; i < records.length; i += 10_000)
      await gzip(
        Buffer.from(
          records
            .slice(i, i + 10_000)
            .map((r) => r.value)
            .join('\n'),
        ),
      );
    const gzipRate = Math.round(EVENTS / ((Date.now() - cpu) / 1000));
    log(`one core, same records: envelope decoding ${decodeRate} events/s, gzip ${gzipRate} events/s`);

    // (2) Replay every archived event back into cdp.deduped, unthrottled.
    const store = new ReplayStore(s3, bucket);
    const replayer = new Replayer({
      kafka,
      s3,
      bucket,
      store,
      topic: topics.deduped,
      groupId: 'archiver-bench',
      select,
      logger,
      leaseMs: 30_000,
    });
    const spec = await store.create(
      { sourceId: SOURCE, from: `${HOUR}:00:00Z`, to: NEXT_HOUR, kind: 'raw', destinations: ['d2'], force: false },
      1_000_000,
    );
    replayer.start();
    t0 = Date.now();
    replayer.take(spec.id);
    await until('replay', async () => (await store.view(spec.id))?.state === 'finished');
    const replayMs = Date.now() - t0;
    await replayer.stop();
    const view = await store.view(spec.id);
    const replayRate = Math.round((view?.progress.replayed ?? 0) / (replayMs / 1000));
    log(`replay: ${replayRate} events/s (${view?.progress.replayed} in ${replayMs} ms)`);
    s3.destroy();

    process.stdout.write(
      `${JSON.stringify({
        bench: 'archiver',
        value: archiveRate,
        unit: 'events/s',
        baseline: putEventsRate,
        ratio: Number((archiveRate / putEventsRate).toFixed(2)),
        objects: entries.length,
        mean_object_bytes: meanBytes,
        replay_events_per_s: replayRate,
        replay_baseline_produce_per_s: produceRate,
        replay_ratio: Number((replayRate / produceRate).toFixed(2)),
        decode_events_per_s: decodeRate,
        gzip_events_per_s: gzipRate,
      })}\n`,
    );
  } finally {
    await stopInfra(infra);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:archiver failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
