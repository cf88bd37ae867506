import { presentedToken, secretMatcher } from './auth';
import { decodeCursor, encodeCursor, pageCursor, pageRequest, takePage } from './paging';

const TOKEN = 'admin-token-0123456789abcdef';
const basic = (userPass: string) => `Basic ${Buffer.from(userPass).toString('base64')}`;

describe('presentedToken', () => {
  it.each([
    ['Bearer', `Bearer ${TOKEN}`, TOKEN],
    ['bearer in lower case', `bearer ${TOKEN}`, TOKEN],
    ["Segment's Basic form (token as user, empty password)", basic(`${TOKEN}:`), TOKEN],
    ['basic in lower case', basic(`${TOKEN}:`).replace('Basic', 'basic'), TOKEN],
  ])('reads %s', (_name, header, token) => {
    expect(presentedToken(header)).toBe(token);
  });
  it.each([
    ['no header', undefined],
    ['empty', ''],
    ['the bare token', TOKEN],
    ['an empty bearer', 'Bearer '],
    ['Basic without the colon', basic(TOKEN)],
    ['Basic with a password', basic(`${TOKEN}:pw`)],
    ['Basic with the token as password', basic(`:${TOKEN}`)],
    ['another scheme', `Token ${TOKEN}`],
    ['a trailing word', `Bearer ${TOKEN} more`],
  ])('reads nothing from %s', (_name, header) => {
    expect(presentedToken(header)).toBeUndefined();
  });
});

describe('secretMatcher', () => {
  const matches = secretMatcher(TOKEN);
  it('accepts the secret only', () => {
    expect(matches(TOKEN)).toBe(true);
    for (const other of [undefined, '', TOKEN.slice(0, -1), `${TOKEN}0`, TOKEN.toUpperCase()]) expect(matches(other)).toBe(false);
  });
});

describe('paging', () => {
  const limits = { defaultLimit: 10, maxLimit: 100 };
  it('reads limit and next, with defaults', () => {
    expect(pageRequest({}, limits)).toEqual({ limit: 10, after: undefined });
    expect(pageRequest({ limit: '100', next: '' }, limits)).toEqual({ limit: 100, after: undefined });
    expect(pageRequest({ limit: '1', next: encodeCursor({ id: 'u-9' }) }, limits)).toEqual({ limit: 1, after: { id: 'u-9' } });
  });
  it.each([
    [{ limit: '0' }, /limit must be an integer from 1 to 100/],
    [{ limit: '101' }, /limit/],
    [{ limit: '2.5' }, /limit/],
    [{ limit: 'ten' }, /limit/],
    [{ limit: ['1', '2'] }, /limit must be given once/],
    [{ next: 'not a cursor!' }, /next is not a cursor/],
    [{ next: Buffer.from('{half').toString('base64url') }, /next is not a cursor/],
  ])('refuses %j with a 400', (query, message) => {
    expect(() => pageRequest(query, limits)).toThrow(
      expect.objectContaining({ status: 400, code: 'invalid_request_error', message: expect.stringMatching(message) }),
    );
  });
  it('takes a page from limit + 1 rows and builds the cursor answer', () => {
    const rows = [1, 2, 3, 4];
    const full = takePage(rows, 3, (last) => ({ after: last }));
    expect(full.items).toEqual([1, 2, 3]);
    expect(decodeCursor(full.next as string)).toEqual({ after: 3 });
    expect(pageCursor('/v1/x?limit=3', full.next)).toEqual({ url: '/v1/x?limit=3', has_more: true, next: full.next });
    const last = takePage([4], 3, () => 'unused');
    expect(last).toEqual({ items: [4], next: undefined });
    expect(pageCursor('/v1/x', last.next)).toEqual({ url: '/v1/x', has_more: false, next: '' });
  });
});
