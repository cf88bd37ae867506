import type { KafkaMessage } from 'kafkajs';
import { UsageError } from './cli';
import { parseCommand, parseOffsets, parseTime } from './dlq-cli';
import { deadLetterIdentity, parseDlqRecord, readableBytes, replayMessage, selects } from './dlq';
import { Progress } from './progress';

const NOW = Date.parse('2026-12-04T12:00:00Z');

function dlqMessage(offset: string, headers: Record<string, string>, timestamp = NOW): KafkaMessage {
  return {
    offset,
    key: Buffer.from('src-1:m-1'),
    value: Buffer.from('{"a":1}'),
    timestamp: String(timestamp),
    attributes: 0,
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
  } as KafkaMessage;
}

const DEDUP_HEADERS = {
  'x-cdp-trace': 't-1',
  'cdp-stage': 'dedup',
  'cdp-error': 'bad envelope',
  'cdp-source-topic': 'cdp.ingest',
  'cdp-source-partition': '4',
  'cdp-source-offset': '99',
};

describe('DLQ records', () => {
  it('reads stage, error and origin from the headers and keeps the original headers apart', () => {
    const record = parseDlqRecord(2, dlqMessage('17', DEDUP_HEADERS));
    expect(record).toMatchObject({
      partition: 2,
      offset: 17n,
      stage: 'dedup',
      error: 'bad envelope',
      source: { topic: 'cdp.ingest', partition: 4, offset: '99' },
    });
    expect(Object.keys(record.headers)).toEqual(['x-cdp-trace']);
    const replay = replayMessage(record);
    expect(replay.topic).toBe('cdp.ingest');
    expect(replay.message).toMatchObject({ key: Buffer.from('src-1:m-1'), value: Buffer.from('{"a":1}'), partition: 4 });
    expect(Object.keys(replay.message.headers ?? {})).toEqual(['x-cdp-trace']);
  });

  it('cannot re-send a record without an origin; copies of one dead letter share an identity', () => {
    const orphan = parseDlqRecord(0, dlqMessage('5', { 'cdp-stage': 'director' }));
    expect(orphan.source).toBeUndefined();
    expect(() => replayMessage(orphan)).toThrow(/0:5 has no cdp-source-topic header/);
    const a = parseDlqRecord(2, dlqMessage('17', DEDUP_HEADERS));
    const b = parseDlqRecord(2, dlqMessage('18', DEDUP_HEADERS));
    expect(deadLetterIdentity(a)).toBe(deadLetterIdentity(b));
    expect(deadLetterIdentity(orphan)).not.toBe(deadLetterIdentity(parseDlqRecord(0, dlqMessage('6', { 'cdp-stage': 'director' }))));
  });

  it('selects by stage, original topic, time and offsets', () => {
    const record = parseDlqRecord(2, dlqMessage('17', DEDUP_HEADERS));
    expect(selects({}, record)).toBe(true);
    expect(selects({ stages: new Set(['dedup']), topics: new Set(['cdp.ingest']) }, record)).toBe(true);
    expect(selects({ stages: new Set(['transform']) }, record)).toBe(false);
    expect(selects({ topics: new Set(['cdp.deduped']) }, record)).toBe(false);
    expect(selects({ since: NOW, until: NOW + 1 }, record)).toBe(true);
    expect(selects({ since: NOW + 1 }, record)).toBe(false);
    expect(selects({ until: NOW }, record)).toBe(false);
    expect(selects({ offsets: [{ partition: 2, from: 10n, to: 17n }] }, record)).toBe(true);
    expect(
      selects(
        {
          offsets: [
            { partition: 2, from: 18n, to: 20n },
            { partition: 1, from: 0n, to: 99n },
          ],
        },
        record,
      ),
    ).toBe(false);
  });

  it('shows values readably: JSON indented or on one line, text as it is, binary as base64', () => {
    expect(readableBytes(Buffer.from('{"a":[1,2]}'))).toBe('{\n  "a": [\n    1,\n    2\n  ]\n}');
    expect(readableBytes(Buffer.from('{"a":[1,2]}'), true)).toBe('{"a":[1,2]}');
    expect(readableBytes(Buffer.from('not json\nat all'), true)).toBe('not json at all');
    expect(readableBytes(Buffer.from([0xff, 0x00, 0x01]))).toBe('base64:/wAB');
    expect(readableBytes(Buffer.from('a\u0000b'))).toBe('base64:YQBi');
    expect(readableBytes(null)).toBe('(null)');
  });
});

describe('cdp-dlq arguments', () => {
  it('reads filters and flags', () => {
    const c = parseCommand(
      ['resend', '--stage', 'dedup', '--stage', 'transform', '--topic', 'cdp.ingest', '--since', '6h', '--offsets', '1:5-9,2:3', '--yes'],
      NOW,
    );
    expect(c.name).toBe('resend');
    expect([...(c.filter.stages ?? [])]).toEqual(['dedup', 'transform']);
    expect(c.filter.since).toBe(NOW - 6 * 3_600_000);
    expect(c.filter.offsets).toEqual([
      { partition: 1, from: 5n, to: 9n },
      { partition: 2, from: 3n, to: 3n },
    ]);
    expect(c.yes).toBe(true);
    expect(parseCommand(['show', '0:3', '1:4'], NOW).filter.offsets).toHaveLength(2);
    expect(parseCommand(['discard', '--all'], NOW).filter).toEqual({});
  });
  it('reads times as ISO 8601 or an age', () => {
    expect(parseTime('--since', '2026-12-01T00:00:00Z', NOW)).toBe(Date.parse('2026-12-01T00:00:00Z'));
    expect(parseTime('--since', '30m', NOW)).toBe(NOW - 1_800_000);
    expect(parseTime('--since', '2d', NOW)).toBe(NOW - 2 * 86_400_000);
  });
  it.each([
    [['nope']],
    [['list', '--since', 'yesterday']],
    [['list', '--until', '12']],
    [['list', '--offsets', 'a:b']],
    [['list', '--offsets', '1:9-3']],
    [['list', '--limit', '-1']],
    [['list', '--bogus']],
    [['list', 'extra']],
    [['resend']],
    [['discard', '--yes']],
    [['show']],
  ])('refuses %j as a usage error', (argv) => {
    expect(() => parseCommand(argv, NOW)).toThrow(UsageError);
  });
  it('parses offsets lists', () => {
    expect(parseOffsets('0:1')).toEqual([{ partition: 0, from: 1n, to: 1n }]);
  });
});

describe('Progress', () => {
  const capture = (isTTY: boolean) => {
    const writes: string[] = [];
    return { stream: { isTTY, write: (t: string) => writes.push(t) }, writes };
  };
  it('prints one line per tenth when stderr is not a terminal', () => {
    const { stream, writes } = capture(false);
    const p = new Progress('resending', 1000, stream);
    for (let i = 0; i < 100; i += 1) p.advance(10);
    p.finish();
    expect(writes).toHaveLength(10);
    expect(writes[0]).toBe('resending: 100/1000 10%\n');
    expect(writes[9]).toBe('resending: 1000/1000 100%\n');
  });
  it('redraws one line on a terminal and ends it', () => {
    const { stream, writes } = capture(true);
    const p = new Progress('resending', 200, stream);
    p.advance(200);
    p.finish();
    expect(writes).toEqual([`\rresending [${'#'.repeat(30)}] 200/200 100%`, '\n']);
  });
  it('prints nothing for a small selection', () => {
    const { stream, writes } = capture(false);
    const p = new Progress('resending', 5, stream);
    p.advance(5);
    p.finish();
    expect(writes).toEqual([]);
  });
});
