import { formatGoDuration, GoDurationError, parseGoDuration } from './duration';

const S = 1_000_000_000n;

describe('parseGoDuration', () => {
  it.each([
    ['0', 0n],
    ['15s', 15n * S],
    ['500ms', 500_000_000n],
    ['1.5s', 1_500_000_000n],
    ['1.1s', 1_100_000_000n],
    ['1m30s', 90n * S],
    ['2h45m', (2n * 3600n + 45n * 60n) * S],
    ['24h', 86_400n * S],
    ['10us', 10_000n],
    ['10\u00b5s', 10_000n],
    ['10\u03bcs', 10_000n],
    ['7ns', 7n],
    ['.5s', 500_000_000n],
    ['1.s', S],
    ['-5s', -5n * S],
    ['+5s', 5n * S],
  ])('parses %s', (input, expected) => {
    expect(parseGoDuration(input)).toBe(expected);
  });

  it.each([
    ['', 'time: invalid duration ""'],
    ['abc', 'time: invalid duration "abc"'],
    ['5', 'time: missing unit in duration "5"'],
    ['5x', 'time: unknown unit "x" in duration "5x"'],
    ['.s', 'time: invalid duration ".s"'],
    ['-', 'time: invalid duration "-"'],
    ['9999999999999999999h', 'time: invalid duration "9999999999999999999h"'],
  ])("rejects %j with Go's message", (input, message) => {
    expect(() => parseGoDuration(input)).toThrow(new GoDurationError(message));
  });
});

describe('formatGoDuration', () => {
  it.each([
    [0n, '0s'],
    [7n, '7ns'],
    [1_500n, '1.5\u00b5s'],
    [500_000_000n, '500ms'],
    [1_500_000_000n, '1.5s'],
    [10n * S, '10s'],
    [90n * S, '1m30s'],
    [3600n * S, '1h0m0s'],
    [86_400n * S, '24h0m0s'],
    [-2n * S, '-2s'],
  ])('formats %s ns as %s', (nanos, expected) => {
    expect(formatGoDuration(nanos)).toBe(expected);
  });

  it('round-trips through the parser', () => {
    for (const text of ['1h2m3.5s', '750ms', '3m0s', '42ns']) {
      expect(formatGoDuration(parseGoDuration(text))).toBe(text);
    }
  });
});
