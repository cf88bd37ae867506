import type { Regulation } from '@cdp/events';
import { selectRecord, type SelectContext } from './select';

const regulations = new Map<string, Regulation['type']>([
  ['main:gone', 'SUPPRESS_WITH_DELETE'],
  ['main:back', 'UNSUPPRESS'],
]);
const ctx: SelectContext = {
  spaceOf: (sourceId) => (sourceId === 'web' ? 'main' : undefined),
  regulation: (space, user) => {
    const type = regulations.get(`${space}:${user}`);
    return type && { regulationId: 'r', type, userId: user, spaceId: space, requestedAt: '2026-12-04T00:00:00Z' };
  },
};
const value = (extra: Record<string, unknown> = {}, userId = 'u1', sourceId = 'web') =>
  Buffer.from(
    JSON.stringify({
      v: 1,
      sourceId,
      messageId: 'm1',
      receivedAt: '2026-12-04T10:30:00.000Z',
      message: { type: 'track', event: 'E', messageId: 'm1', userId },
      ...extra,
    }),
  );

describe('selectRecord', () => {
  it('archives an envelope as its own line, in its source and hour group', () => {
    const s = selectRecord('raw', '5', value(), ctx);
    expect(s).toEqual({
      archive: {
        offset: '5',
        line: value().toString(),
        receivedAt: '2026-12-04T10:30:00.000Z',
        userId: 'u1',
        group: { kind: 'raw', sourceId: 'web', destinationId: undefined, hour: '2026-12-04T10' },
      },
    });
  });

  it('writes a value with newlines in it as one line', () => {
    const pretty = Buffer.from(JSON.stringify(JSON.parse(value().toString()), null, 2));
    const s = selectRecord('raw', '5', pretty, ctx);
    expect('archive' in s && s.archive.line).toBe(value().toString());
  });

  it('skips replayed events and regulated users, not unsuppressed ones or users of unknown sources', () => {
    expect(selectRecord('raw', '1', value({ replay: { id: 'r', destinations: ['d'], force: false } }), ctx)).toEqual({ skip: 'replay' });
    expect(selectRecord('raw', '1', value({}, 'gone'), ctx)).toEqual({ skip: 'regulated' });
    expect('archive' in selectRecord('raw', '1', value({}, 'back'), ctx)).toBe(true);
    expect('archive' in selectRecord('raw', '1', value({}, 'gone', 'other'), ctx)).toBe(true);
  });

  it('marks a non-envelope and an undelivered record without its fields as poison', () => {
    expect('poison' in selectRecord('raw', '1', Buffer.from('not json'), ctx)).toBe(true);
    expect('poison' in selectRecord('raw', '1', null, ctx)).toBe(true);
    expect('poison' in selectRecord('undelivered', '1', value(), ctx)).toBe(true);
  });
});
