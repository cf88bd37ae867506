/**
 * Go `time.Duration` parsing and formatting, because Consul's HTTP API takes and prints
 * durations in Go syntax ("15s", "1m30s", "24h0m0s") and its error messages quote them.
 * Values are nanoseconds as bigint so that parsing is exact like Go's int64 arithmetic.
 */

const NS = 1n;
const US = 1000n * NS;
const MS = 1000n * US;
const SEC = 1000n * MS;
const MIN = 60n * SEC;
const HOUR = 60n * MIN;

const UNITS: Record<string, bigint> = {
  ns: NS,
  us: US,
  '\u00b5s': US, // micro sign
  '\u03bcs': US, // Greek mu
  ms: MS,
  s: SEC,
  m: MIN,
  h: HOUR,
};

const MAX_INT64 = (1n << 63n) - 1n;

export class GoDurationError extends Error {
  override name = 'GoDurationError';
}

const quote = (s: string) => JSON.stringify(s);

/** Parses like Go's `time.ParseDuration`; throws GoDurationError with Go's message text. */
export function parseGoDuration(input: string): bigint {
  const invalid = () => new GoDurationError(`time: invalid duration ${quote(input)}`);
  let s = input;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') throw invalid();

  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || (s[0] >= '0' && s[0] <= '9'))) throw invalid();

    const intMatch = /^[0-9]*/.exec(s)![0];
    s = s.slice(intMatch.length);
    const pre = intMatch.length > 0;
    let whole = pre ? BigInt(intMatch) : 0n;
    if (whole > MAX_INT64) throw invalid();

    let fracDigits = '';
    let post = false;
    if (s !== '' && s[0] === '.') {
      s = s.slice(1);
      fracDigits = /^[0-9]*/.exec(s)![0];
      s = s.slice(fracDigits.length);
      post = fracDigits.length > 0;
    }
    if (!pre && !post) throw invalid();

    const unitMatch = /^[^0-9.]*/.exec(s)![0];
    if (unitMatch === '') throw new GoDurationError(`time: missing unit in duration ${quote(input)}`);
    s = s.slice(unitMatch.length);
    const unit = UNITS[unitMatch];
    if (unit === undefined) {
      throw new GoDurationError(`time: unknown unit ${quote(unitMatch)} in duration ${quote(input)}`);
    }

    if (whole > (1n << 63n) / unit) throw invalid();
    whole *= unit;
    if (fracDigits !== '') {
      // Go scales the fraction in float64, so sub-nanosecond digits are truncated.
      const frac = Number(`0.${fracDigits}`);
      whole += BigInt(Math.trunc(frac * Number(unit)));
    }
    total += whole;
    if (total > 1n << 63n) throw invalid();
  }
  if (neg) return -total;
  if (total > MAX_INT64) throw invalid();
  return total;
}

/** Formats like Go's `Duration.String()`: "0s", "500ms", "1.5s", "1m30s", "24h0m0s". */
export function formatGoDuration(nanos: bigint | number): string {
  let d = typeof nanos === 'bigint' ? nanos : BigInt(Math.trunc(nanos));
  if (d === 0n) return '0s';
  const sign = d < 0n ? '-' : '';
  if (d < 0n) d = -d;

  if (d < SEC) {
    if (d < US) return `${sign}${d}ns`;
    if (d < MS) return `${sign}${withFraction(d, 3)}\u00b5s`;
    return `${sign}${withFraction(d, 6)}ms`;
  }

  let out = `${withFraction(d % MIN, 9)}s`;
  let rest = d / MIN;
  if (rest > 0n) {
    out = `${rest % 60n}m${out}`;
    rest /= 60n;
    if (rest > 0n) out = `${rest}h${out}`;
  }
  return sign + out;
}

/** `value / 10^digits` printed with the fraction's trailing zeros dropped. */
function withFraction(value: bigint, digits: number): string {
  const scale = 10n ** BigInt(digits);
  const whole = value / scale;
  const frac = (value % scale).toString().padStart(digits, '0').replace(/0+$/, '');
  return frac === '' ? `${whole}` : `${whole}.${frac}`;
}

export const NANOS_PER_MS = 1_000_000n;

/** Nanoseconds to whole milliseconds (floor), as a number for timers. */
export function nanosToMs(nanos: bigint): number {
  return Number(nanos / NANOS_PER_MS);
}
