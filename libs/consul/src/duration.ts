const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  '\u00b5s': 1e-3,
  '\u03bcs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Milliseconds of a Go duration string ("10s", "1m30s", "500ms"), the format Consul takes
 * for TTL and LockDelay; the session needs the TTL as a number to schedule renewals.
 */
export function durationToMs(text: string): number {
  if (text === '0') return 0;
  const part = /(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) throw new Error(`invalid duration "${text}" (want Go syntax such as "10s" or "1m30s")`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    at = part.lastIndex;
  }
  if (at === 0) throw new Error(`invalid duration "${text}" (want Go syntax such as "10s" or "1m30s")`);
  return total;
}
