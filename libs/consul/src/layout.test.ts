import {
  ConsulKeys,
  directorSessionName,
  isDirectorSession,
  jobDbRecordOf,
  jobDbRecordSchema,
  lockHolderSchema,
  parseDestinationControls,
  parseJobDbEntries,
  parseKvJson,
  type KvEntry,
} from './index';

const item = (Key: string, Value: string | null, extra: Partial<KvEntry> = {}): KvEntry => ({
  Key,
  Value,
  Flags: 0,
  LockIndex: 0,
  ModifyIndex: 7,
  CreateIndex: 1,
  ...extra,
});

describe('ConsulKeys', () => {
  const keys = new ConsulKeys('cdp/');

  it('builds the layout of docs/contracts.md', () => {
    expect(keys.jobDbs).toBe('cdp/jobdbs/');
    expect(keys.jobDb('a')).toBe('cdp/jobdbs/a');
    expect(keys.jobDbLock('a')).toBe('cdp/jobdbs/a/lock');
    expect(keys.destinations).toBe('cdp/destinations/');
    expect(keys.destinationControl('hook_1')).toBe('cdp/destinations/hook_1/control');
    expect(keys.leader('jobdb-manager')).toBe('cdp/leader/jobdb-manager');
    expect(new ConsulKeys().jobDb('x')).toBe('cdp/jobdbs/x');
    expect(new ConsulKeys('t1/nested/').jobDbLock('x')).toBe('t1/nested/jobdbs/x/lock');
    expect(new ConsulKeys('').destinationControl('d')).toBe('destinations/d/control');
  });

  it.each(['cdp', '/cdp/', 'cdp//', 'c dp/', '../'])('refuses the prefix %j', (prefix) => {
    expect(() => new ConsulKeys(prefix)).toThrow(/invalid Consul prefix/);
  });

  it.each(['', 'a/b', '..', 'x'.repeat(65), 'a b'])('refuses the id %j', (id) => {
    expect(() => keys.jobDb(id)).toThrow(/invalid JobDB id/);
    expect(() => keys.jobDbLock(id)).toThrow(/invalid JobDB id/);
    expect(() => keys.destinationControl(id)).toThrow(/invalid destination id/);
  });

  it('refuses a leader name that is not a service name', () => {
    expect(() => keys.leader('Jobdb/x')).toThrow(/invalid service name/);
  });

  it('parses exactly the keys it builds', () => {
    expect(keys.parse('cdp/jobdbs/a')).toEqual({ kind: 'jobdb', id: 'a' });
    expect(keys.parse('cdp/jobdbs/a/lock')).toEqual({ kind: 'jobdb-lock', id: 'a' });
    expect(keys.parse('cdp/destinations/d/control')).toEqual({ kind: 'destination-control', id: 'd' });
    expect(keys.parse('cdp/leader/jobdb-manager')).toEqual({ kind: 'leader', service: 'jobdb-manager' });
    for (const other of [
      'cdp/jobdbs/',
      'cdp/jobdbs/a/other',
      'cdp/jobdbs/a/lock/x',
      'cdp/jobdbs/a b',
      'other/jobdbs/a',
      'cdp/destinations/d',
      'cdp/destinations/d/other',
      'cdp/leader/',
      'cdpjobdbs/a',
    ]) {
      expect(keys.parse(other)).toBeUndefined();
    }
  });
});

describe('director session names', () => {
  it('names and recognises director:<pod>', () => {
    expect(directorSessionName('director-0')).toBe('director:director-0');
    expect(isDirectorSession('director:director-0')).toBe(true);
    expect(isDirectorSession('director:')).toBe(false);
    expect(isDirectorSession('jobdb-manager:x')).toBe(false);
    expect(() => directorSessionName('')).toThrow();
  });
});

describe('values', () => {
  it('keeps extra fields of a JobDB record and names the bad ones', () => {
    const text = JSON.stringify({ state: 'active', dsnRef: 'db_a', createdAt: '2026-01-01T00:00:00Z', extra: 1 });
    expect(parseKvJson(jobDbRecordSchema, text)).toEqual({ state: 'active', dsnRef: 'db_a', createdAt: '2026-01-01T00:00:00Z', extra: 1 });
    expect(() => parseKvJson(jobDbRecordSchema, JSON.stringify({ state: 'sleeping', dsnRef: '', createdAt: 'x' }))).toThrow(
      /^state: .*; dsnRef: /,
    );
    expect(() => parseKvJson(jobDbRecordSchema, 'not json')).toThrow('not valid JSON');
    expect(() => parseKvJson(jobDbRecordSchema, null)).toThrow('empty value');
    expect(() => parseKvJson(lockHolderSchema, '[]')).toThrow(/^\(value\): /);
    expect(parseKvJson(lockHolderSchema, '{"pod":"p"}')).toEqual({ pod: 'p' });
  });
});

describe('parseJobDbEntries', () => {
  it('parses records and lock holders, skipping bad values', () => {
    const bad: string[] = [];
    const entries = parseJobDbEntries(
      new ConsulKeys('cdp/'),
      [
        item('cdp/jobdbs/a', JSON.stringify({ state: 'active', dsnRef: 'db_a', createdAt: '2026-01-01T00:00:00Z', extra: 1 })),
        item('cdp/jobdbs/a/lock', '{"pod":"p"}', { Session: 's1' }),
        item('cdp/jobdbs/b', JSON.stringify({ state: 'sleeping', dsnRef: 'db_b', createdAt: 'x' })),
        item('cdp/jobdbs/c', 'not json'),
        item('cdp/jobdbs/d', JSON.stringify({ state: 'draining', dsnRef: 'db_d', createdAt: 'x' })),
        item('cdp/jobdbs/d/lock', '', {}),
        item('cdp/destinations/x/control', '{}'),
      ],
      (key) => bad.push(key),
    );
    expect(entries.map((e) => [e.id, e.state, e.holder, e.modifyIndex])).toEqual([
      ['a', 'active', 's1', 7],
      ['d', 'draining', undefined, 7],
    ]);
    expect(entries[0].extra).toBe(1);
    expect(bad).toEqual(['cdp/jobdbs/b', 'cdp/jobdbs/c']);
    expect(jobDbRecordOf(entries[0])).toEqual({ state: 'active', dsnRef: 'db_a', createdAt: '2026-01-01T00:00:00Z', extra: 1 });
  });
});

describe('parseDestinationControls', () => {
  it('parses operator controls and ignores bad ones', () => {
    const bad: string[] = [];
    const controls = parseDestinationControls(
      new ConsulKeys('cdp/'),
      [
        item('cdp/destinations/hook/control', '{"paused":true,"priority":3,"rateLimitPerSecond":5}'),
        item('cdp/destinations/x/control', '{"paused":"yes"}'),
        item('cdp/destinations/z/control', '{"priority":101}'),
        item('cdp/destinations/empty/control', null),
        item('cdp/destinations/y/other', '{}'),
      ],
      (key) => bad.push(key),
    );
    expect(controls.get('hook')).toEqual({ paused: true, priority: 3, rateLimitPerSecond: 5 });
    expect(controls.get('empty')).toEqual({});
    expect([...controls.keys()].sort()).toEqual(['empty', 'hook']);
    expect(bad).toEqual(['cdp/destinations/x/control', 'cdp/destinations/z/control']);
  });
});
