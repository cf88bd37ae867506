#!/usr/bin/env node
// cdp-dlq: list and inspect cdp.dlq, re-send chosen records to their original topic, or discard
// them. What was done to a record is a marker on cdp.dlq-handled (compacted, keyed by the DLQ
// record's partition:offset), written in the same Kafka transaction as a re-send.
import { parseArgs } from 'node:util';
import type { Admin, Kafka, Message } from 'kafkajs';
import { checkKafkaEnv, kafkaEnv, loadConfig, logLevel, z } from '@cdp/config';
import { cliLogger, err, out, runCli, UsageError } from './cli';
import { createKafka, kafkaConnection } from './client';
import {
  deadLetterIdentity,
  markerMessage,
  parseDlqRecord,
  positionOf,
  readableBytes,
  readMarker,
  replayMessage,
  selects,
  type DlqFilter,
  type DlqRecord,
  type HandledAction,
  type HandledMarker,
  type OffsetSpan,
} from './dlq';
import { recordBytes, splitByBytes } from './limits';
import { javaCompatiblePartitioner } from './partitioner';
import { Progress } from './progress';
import { partitionBounds, readRanges, type PartitionRange } from './read-ranges';
import { requireTopics, topicNames } from './topics';

const USAGE = `usage: cdp-dlq list [filters] [--pending] [--json] [--limit N]
       cdp-dlq show PARTITION:OFFSET...
       cdp-dlq resend [filters | --all] [--yes]
       cdp-dlq discard [filters | --all] [--reason TEXT] [--yes]
filters: --stage NAME, --topic ORIGINAL_TOPIC (both repeatable), --since TIME, --until TIME
         (ISO 8601, or 30m, 6h, 2d for that long ago), --offsets P:O[-O2][,...] (cdp.dlq positions,
         as list prints them)
resend and discard act on records not yet handled; without --yes they only say what they would do.
env: KAFKA_BROKERS (required, comma-separated), CDP_TOPIC_PREFIX (cdp.), LOG_LEVEL (warn), and the
     services' Kafka TLS/SASL settings (KAFKA_SSL, KAFKA_SSL_CA_FILE, KAFKA_SASL_MECHANISM,
     KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)`;

/** The same Kafka names, types and checks the services read. */
const dlqCliEnv = z.object({ ...kafkaEnv, LOG_LEVEL: logLevel().default('warn') }).superRefine(checkKafkaEnv);

/** Bytes of original records per re-send transaction (well under a broker's request limit). */
const TRANSACTION_BYTES = 4 * 1024 * 1024;

const DURATION = /^(\d+)(m|h|d)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function parseTime(flag: string, text: string, now: number): number {
  const relative = DURATION.exec(text);
  if (relative) return now - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS];
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms))
    throw new UsageError(`${flag} must be an ISO 8601 time or 30m, 6h, 2d; got ${JSON.stringify(text)}`);
  return ms;
}

export function parseOffsets(text: string): OffsetSpan[] {
  return text.split(',').map((part) => {
    const match = /^(\d+):(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!match) throw new UsageError(`offsets must be PARTITION:OFFSET or PARTITION:FROM-TO, comma-separated; got ${JSON.stringify(part)}`);
    const from = BigInt(match[2]);
    const to = match[3] === undefined ? from : BigInt(match[3]);
    if (to < from) throw new UsageError(`offsets ${part}: the range ends before it starts`);
    return { partition: Number(match[1]), from, to };
  });
}

interface Command {
  name: 'list' | 'show' | 'resend' | 'discard';
  filter: DlqFilter;
  pending: boolean;
  json: boolean;
  limit: number | undefined;
  yes: boolean;
  reason: string | undefined;
}

export function parseCommand(argv: string[], now = Date.now()): Command {
  const name = argv[0];
  if (name !== 'list' && name !== 'show' && name !== 'resend' && name !== 'discard')
    throw new UsageError(`unknown command ${JSON.stringify(name ?? '')}`);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv.slice(1),
      allowPositionals: name === 'show',
      options: {
        stage: { type: 'string', multiple: true },
        topic: { type: 'string', multiple: true },
        since: { type: 'string' },
        until: { type: 'string' },
        offsets: { type: 'string' },
        pending: { type: 'boolean' },
        json: { type: 'boolean' },
        limit: { type: 'string' },
        all: { type: 'boolean' },
        yes: { type: 'boolean' },
        reason: { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  const filter: DlqFilter = {};
  if (v.stage) filter.stages = new Set(v.stage);
  if (v.topic) filter.topics = new Set(v.topic);
  if (v.since) filter.since = parseTime('--since', v.since, now);
  if (v.until) filter.until = parseTime('--until', v.until, now);
  if (v.offsets) filter.offsets = parseOffsets(v.offsets);
  if (name === 'show') {
    if (parsed.positionals.length === 0) throw new UsageError('show needs at least one PARTITION:OFFSET');
    filter.offsets = parseOffsets(parsed.positionals.join(','));
  }
  if ((name === 'resend' || name === 'discard') && Object.keys(filter).length === 0 && !v.all) {
    throw new UsageError(`${name} needs a filter, or --all for every record not yet handled`);
  }
  let limit: number | undefined;
  if (v.limit !== undefined) {
    limit = Number(v.limit);
    if (!Number.isSafeInteger(limit) || limit <= 0)
      throw new UsageError(`--limit must be a positive integer, got ${JSON.stringify(v.limit)}`);
  }
  return { name, filter, pending: v.pending ?? false, json: v.json ?? false, limit, yes: v.yes ?? false, reason: v.reason };
}

/** The last marker of every DLQ position on cdp.dlq-handled. */
async function readMarkers(kafka: Kafka, admin: Admin, topic: string): Promise<Map<string, HandledMarker>> {
  const markers = new Map<string, HandledMarker>();
  const ranges = (await partitionBounds(admin, topic)).map((b) => ({ partition: b.partition, from: b.low, to: b.high }));
  await readRanges({
    kafka,
    topic,
    ranges,
    onMessages: (_partition, messages) => {
      for (const m of messages) {
        const entry = readMarker(m);
        if (entry) markers.set(entry[0], entry[1]);
      }
    },
  });
  return markers;
}

/** Offset ranges of cdp.dlq that can hold selected records (time and offset filters narrow them). */
async function rangesFor(admin: Admin, topic: string, filter: DlqFilter): Promise<PartitionRange[]> {
  const bounds = await partitionBounds(admin, topic);
  const fromTime = new Map<number, bigint>();
  if (filter.since !== undefined) {
    for (const o of await admin.fetchTopicOffsetsByTimestamp(topic, filter.since)) fromTime.set(o.partition, BigInt(o.offset));
  }
  return bounds.map((b) => {
    let from = b.low;
    let to = b.high;
    const byTime = fromTime.get(b.partition);
    if (byTime !== undefined && byTime >= 0n && byTime > from) from = byTime;
    if (filter.offsets) {
      const spans = filter.offsets.filter((s) => s.partition === b.partition);
      if (spans.length === 0) return { partition: b.partition, from: to, to };
      const low = spans.reduce((m, s) => (s.from < m ? s.from : m), spans[0].from);
      const high = spans.reduce((m, s) => (s.to > m ? s.to : m), spans[0].to) + 1n;
      if (low > from) from = low;
      if (high < to) to = high;
    }
    return { partition: b.partition, from, to };
  });
}

async function select(kafka: Kafka, admin: Admin, topic: string, filter: DlqFilter): Promise<DlqRecord[]> {
  const ranges = await rangesFor(admin, topic, filter);
  const total = ranges.reduce((n, r) => n + (r.to > r.from ? Number(r.to - r.from) : 0), 0);
  const progress = new Progress(`reading ${topic}`, total, process.stderr, 5_000);
  const selected: DlqRecord[] = [];
  await readRanges({
    kafka,
    topic,
    ranges,
    onMessages: (partition, messages) => {
      for (const m of messages) {
        const record = parseDlqRecord(partition, m);
        if (selects(filter, record)) selected.push(record);
      }
    },
    onProgress: (n) => progress.advance(n),
  });
  progress.finish();
  return selected.sort(
    (a, b) => a.timestamp - b.timestamp || a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0),
  );
}

function stateOf(marker: HandledMarker | undefined): string {
  return marker ? `${marker.action} ${marker.at}` : 'pending';
}

function sourceText(record: DlqRecord): string {
  const s = record.source;
  return s ? `${s.topic}/${s.partition ?? '?'}@${s.offset ?? '?'}` : '(unknown)';
}

function listLine(record: DlqRecord, marker: HandledMarker | undefined): string {
  const error = record.error.replace(/\s+/g, ' ');
  return [
    positionOf(record),
    new Date(record.timestamp).toISOString(),
    marker?.action ?? 'pending',
    record.stage,
    sourceText(record),
    `key=${readableBytes(record.key, true)}`,
    error.length > 100 ? `${error.slice(0, 100)}…` : error,
  ].join('  ');
}

function headerText(value: unknown): string {
  const one = Array.isArray(value) ? value[0] : value;
  return Buffer.isBuffer(one) ? readableBytes(one, true) : String(one);
}

function jsonLine(record: DlqRecord, marker: HandledMarker | undefined): string {
  return JSON.stringify({
    position: positionOf(record),
    partition: record.partition,
    offset: record.offset.toString(),
    deadLetteredAt: new Date(record.timestamp).toISOString(),
    state: marker?.action ?? 'pending',
    handled: marker,
    stage: record.stage,
    error: record.error,
    source: record.source,
    key: readableBytes(record.key, true),
    headers: Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, headerText(v)])),
    value: readableBytes(record.value, true),
  });
}

function details(topic: string, record: DlqRecord, marker: HandledMarker | undefined): string {
  const lines = [
    `${topic} ${positionOf(record)}`,
    `  dead-lettered  ${new Date(record.timestamp).toISOString()}`,
    `  state          ${stateOf(marker)}${marker?.reason ? ` (${marker.reason})` : ''}`,
    `  stage          ${record.stage}`,
    `  error          ${record.error}`,
    `  original       ${record.source ? `${record.source.topic} partition ${record.source.partition ?? '?'} offset ${record.source.offset ?? '?'}` : '(unknown: no cdp-source-topic header)'}`,
    `  key            ${readableBytes(record.key, true)}`,
    ...Object.entries(record.headers).map(([k, v]) => `  header         ${k}: ${headerText(v)}`),
    '  value',
    ...readableBytes(record.value)
      .split('\n')
      .map((l) => `    ${l}`),
  ];
  return lines.join('\n');
}

/**
 * Writes, per transaction, the re-sent records (resend) and one marker per DLQ record. Repeated
 * DLQ copies of one dead letter are sent once and all marked. Returns how many were sent.
 */
async function handle(
  kafka: Kafka,
  markerTopic: string,
  transactionalId: string,
  records: DlqRecord[],
  action: HandledAction,
  reason: string | undefined,
): Promise<number> {
  const producer = kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: javaCompatiblePartitioner,
  });
  await producer.connect();
  const progress = new Progress(action === 'resent' ? 'resending' : 'discarding', records.length);
  const sentIdentities = new Set<string>();
  let sent = 0;
  try {
    const sizeOf = (r: DlqRecord) => recordBytes({ key: r.key, value: r.value });
    for (const chunk of splitByBytes(records, TRANSACTION_BYTES, sizeOf)) {
      const at = new Date();
      const byTopic = new Map<string, Message[]>();
      for (const record of chunk) {
        if (action !== 'resent' || sentIdentities.has(deadLetterIdentity(record))) continue;
        sentIdentities.add(deadLetterIdentity(record));
        const { topic, message } = replayMessage(record);
        byTopic.set(topic, [...(byTopic.get(topic) ?? []), message]);
      }
      const transaction = await producer.transaction();
      try {
        await transaction.sendBatch({
          acks: -1,
          topicMessages: [
            ...[...byTopic].map(([topic, messages]) => ({ topic, messages })),
            { topic: markerTopic, messages: chunk.map((r) => markerMessage(r, action, at, reason)) },
          ],
        });
        await transaction.commit();
      } catch (error) {
        await transaction.abort().catch(() => undefined);
        throw error;
      }
      sent += [...byTopic.values()].reduce((n, m) => n + m.length, 0);
      progress.advance(chunk.length);
    }
  } finally {
    progress.finish();
    await producer.disconnect().catch(() => undefined);
  }
  return sent;
}

function summary(records: DlqRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    const key = `${r.stage} from ${r.source?.topic ?? '(unknown)'}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `  ${n} ${k}`).join('\n');
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = parseCommand(argv);
  const config = loadConfig(dlqCliEnv, env);
  const names = topicNames(config.CDP_TOPIC_PREFIX);
  const kafka = createKafka({ ...kafkaConnection(config), clientId: 'cdp-dlq', logger: cliLogger('cdp-dlq', config.LOG_LEVEL) });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await requireTopics(admin, [names.dlq, names['dlq-handled']]);
    const markers = await readMarkers(kafka, admin, names['dlq-handled']);
    const selected = await select(kafka, admin, names.dlq, command.filter);
    const markerOf = (r: DlqRecord) => markers.get(positionOf(r));

    if (command.name === 'list') {
      const shown = command.pending ? selected.filter((r) => !markerOf(r)) : selected;
      const limited = command.limit === undefined ? shown : shown.slice(0, command.limit);
      for (const r of limited) out(command.json ? jsonLine(r, markerOf(r)) : listLine(r, markerOf(r)));
      err(`${limited.length} of ${shown.length} records${command.pending ? ' not yet handled' : ''} shown (${names.dlq})`);
      return 0;
    }
    if (command.name === 'show') {
      const found = new Set(selected.map(positionOf));
      for (const r of selected) out(`${details(names.dlq, r, markerOf(r))}\n`);
      const missing = (command.filter.offsets ?? []).filter((s) => s.from === s.to && !found.has(`${s.partition}:${s.from}`));
      for (const s of missing)
        err(`${s.partition}:${s.from}: no record there in ${names.dlq} (never written, expired, or a transaction marker)`);
      return missing.length > 0 ? 1 : 0;
    }

    const handled = selected.filter((r) => markerOf(r));
    let todo = selected.filter((r) => !markerOf(r));
    const problems: string[] = [];
    if (command.name === 'resend') {
      const existing = new Set(await admin.listTopics());
      todo = todo.filter((r) => {
        if (!r.source) problems.push(`${positionOf(r)}: no original topic (no cdp-source-topic header); not re-sent`);
        else if (!existing.has(r.source.topic))
          problems.push(`${positionOf(r)}: original topic ${r.source.topic} does not exist; not re-sent`);
        // A stage leaves the value out of a DLQ copy above the DLQ's size limit (cdp-error says so).
        else if (r.value === null) problems.push(`${positionOf(r)}: no value in the DLQ copy; not re-sent (discard it)`);
        else return true;
        return false;
      });
    }
    for (const p of problems) err(p);
    const verb = command.name === 'resend' ? 're-send' : 'discard';
    if (handled.length > 0) out(`${handled.length} selected records were already handled; left alone`);
    if (!command.yes) {
      out(`would ${verb} ${todo.length} records:${todo.length > 0 ? `\n${summary(todo)}` : ''}\nrun again with --yes to do it`);
      return problems.length > 0 ? 1 : 0;
    }
    const action: HandledAction = command.name === 'resend' ? 'resent' : 'discarded';
    const sent = await handle(kafka, names['dlq-handled'], `${names.dlq}-tool`, todo, action, command.reason);
    if (action === 'resent')
      out(
        `resent ${sent} records to their original topics${todo.length > sent ? ` (${todo.length - sent} repeated DLQ copies of them marked, not sent again)` : ''}`,
      );
    else out(`discarded ${todo.length} records`);
    return problems.length > 0 ? 1 : 0;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

if (require.main === module) runCli('cdp-dlq', USAGE, () => main(process.argv.slice(2), process.env));
