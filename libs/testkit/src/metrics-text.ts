// Reading the Prometheus text a service serves on /metrics (or a prom-client registry's
// `metrics()`), for assertions.

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The values of every sample of `name` whose labels include `labels` (other labels may differ). */
export function metricSamples(text: string, name: string, labels: Record<string, string> = {}): number[] {
  const values: number[] = [];
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const own = new Map<string, string>();
    for (const [, key, value] of (m[2] ?? '').matchAll(LABEL))
      own.set(
        key,
        value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)),
      );
    if (Object.entries(labels).every(([k, v]) => own.get(k) === v)) values.push(Number(m[3]));
  }
  return values;
}

/** The sum of `name` over its samples whose labels include `labels`; 0 when there is none. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  return metricSamples(text, name, labels).reduce((sum, v) => sum + v, 0);
}
