import { parseWorkspace } from '@cdp/workspace';
import { classifyError, signBody } from './destinations';
import { DEFAULT_ALLOWED_JOB_HEADERS, FORBIDDEN_JOB_HEADERS, rpcBatchSchema, rpcJobSchema } from '@cdp/director-rpc';
import { JobHeaderPolicy } from './job-headers';
import { screenJob, toNewJobs } from './rpc';
import { StatsCollector } from './stats';
import { undeliveredRecord } from './undelivered';
import { undeliveredSchema } from '@cdp/events';
import crypto from 'node:crypto';

const workspace = parseWorkspace(
  JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [{ id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk1'] }],
    destinations: [
      { id: 'hook', name: 'Hook', type: 'webhook', settings: { url: 'http://127.0.0.1:1/x' }, limits: { retryWindowMs: 120_000 } },
    ],
    connections: [{ sourceId: 'web', destinationId: 'hook' }],
  }),
  { format: 'json', file: 'test.json' },
);

const good = { sourceId: 'web', messageId: 'm1', destinationId: 'hook', subscriptionId: 'default', payload: { type: 'track' } };

describe('RPC batch schema', () => {
  it('accepts a well-formed batch and fills defaults', () => {
    const parsed = rpcBatchSchema.parse({ jobs: [good] });
    const now = Date.parse('2026-01-01T00:00:00Z');
    const [job] = toNewJobs(parsed, workspace, 4 * 3_600_000, now);
    expect(job.receivedAt.getTime()).toBe(now);
    expect(job.expiresAt.getTime()).toBe(now + 120_000); // the destination's window
    expect(JSON.parse(job.payload)).toEqual({ type: 'track' });
    const [other] = toNewJobs(rpcBatchSchema.parse({ jobs: [{ ...good, destinationId: 'gone' }] }), workspace, 1_000, now);
    expect(other.expiresAt.getTime()).toBe(now + 1_000);
  });
  it.each([
    ['no jobs', { jobs: [] }],
    ['not an object', [good]],
    ['missing messageId', { jobs: [{ ...good, messageId: undefined }] }],
    ['missing payload', { jobs: [{ ...good, payload: undefined }] }],
    ['bad source id', { jobs: [{ ...good, sourceId: 'a:b' }] }],
    ['unknown field', { jobs: [{ ...good, extra: 1 }] }],
    ['header with newline', { jobs: [{ ...good, headers: { 'x-a': 'a\nb' } }] }],
    ['bad expiresAt', { jobs: [{ ...good, expiresAt: 'tomorrow' }] }],
  ])('rejects %s', (_name, body) => {
    expect(rpcBatchSchema.safeParse(body).success).toBe(false);
  });
});

describe('RPC job checks', () => {
  const policy = new JobHeaderPolicy(DEFAULT_ALLOWED_JOB_HEADERS);
  const screen = (job: object) => screenJob(rpcJobSchema.parse({ ...good, ...job }), workspace, policy);
  it('admits allow-listed headers, names lower-cased', () => {
    expect(screen({ headers: { 'X-Cdp-Trace': 't', 'Content-Type': 'text/plain' } })).toEqual({
      job: expect.objectContaining({ headers: { 'x-cdp-trace': 't', 'content-type': 'text/plain' } }),
    });
  });
  it.each(FORBIDDEN_JOB_HEADERS.map((h) => [h]))('rejects %s in any case', (name) => {
    expect(screen({ headers: { [name.toUpperCase()]: 'v' } })).toEqual({ error: `header_not_allowed: ${name}` });
  });
  it('rejects a header outside the list, one name twice, and an unknown destination', () => {
    expect(screen({ headers: { 'x-other': 'v' } })).toEqual({ error: 'header_not_allowed: x-other' });
    expect(screen({ headers: { 'x-cdp-a': '1', 'X-CDP-A': '2' } })).toEqual({ error: 'duplicate_header: x-cdp-a' });
    expect(screen({ destinationId: 'gone' })).toEqual({ error: 'unknown_destination: gone' });
  });
  it('refuses an allow-list naming a forbidden header or a malformed entry', () => {
    expect(() => new JobHeaderPolicy(['x-cdp-*', 'host'])).toThrow(/host/);
    expect(() => new JobHeaderPolicy(['X-Upper'])).toThrow(/lower-case/);
    expect(new JobHeaderPolicy(['x-*']).allows('x-signature')).toBe(false);
  });
});

describe('helpers', () => {
  it('signs with HMAC-SHA256 of the exact body', () => {
    const expected = crypto.createHmac('sha256', 's3cret').update('{"a":1}').digest('hex');
    expect(signBody('s3cret', '{"a":1}')).toBe(`sha256=${expected}`);
  });
  it('classifies network errors', () => {
    expect(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })).code).toBe('connection_refused');
    expect(classifyError(Object.assign(new Error('x'), { code: 'ECONNRESET' })).code).toBe('connection_reset');
    expect(classifyError(Object.assign(new Error('x'), { code: 'ENOTFOUND' })).code).toBe('dns');
    expect(classifyError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })).code).toBe('timeout');
    expect(classifyError(Object.assign(new Error('x'), { name: 'TimeoutError' })).code).toBe('timeout');
  });
  it('aggregates stats per minute and (source, destination)', () => {
    const s = new StatsCollector('pod1');
    s.record('web', 'hook', 'succeeded', 12, null, 60_000);
    s.record('web', 'hook', 'retried', 5_000, { status: 503, error: 'HTTP 503', responseExcerpt: 'busy' }, 61_000);
    s.record('web', 'hook', 'succeeded', 1, null, 120_500);
    expect(s.take(120_600)).toHaveLength(1);
    const [row] = s.take(0, true);
    expect(row.succeeded).toBe(1);
  });
  it('builds a valid cdp.undelivered record', () => {
    const r = undeliveredRecord(
      {
        id: 'k'.repeat(27),
        jobDbId: 'db',
        sourceId: 'web',
        destinationId: 'hook',
        expiresAt: 1,
        state: 'archiving',
        attempt: 3,
        nextRetryAt: null,
        content: {
          messageId: 'm1',
          subscriptionId: 'default',
          payload: JSON.stringify({ type: 'track', messageId: 'm1', event: 'E' }),
          headers: {},
          receivedAt: 0,
          firstAttemptAt: 0,
          lastStatus: 503,
          lastError: 'HTTP 503',
          lastResponseExcerpt: 'busy',
        },
        contentBytes: 0,
      },
      2,
    );
    expect(r.key).toBe('web:hook');
    expect(undeliveredSchema.safeParse(JSON.parse(r.value)).success).toBe(true);
  });
});
