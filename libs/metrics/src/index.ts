import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * One registry per process (not prom-client's global one), so tests that build several
 * components in one jest worker never collide. Default process metrics stay unprefixed.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const NAME = /^cdp_[a-z0-9_]+$/;

function checkName(name: string, kind: 'counter' | 'gauge' | 'histogram'): void {
  if (!NAME.test(name)) throw new Error(`metric ${name}: names start with cdp_ and are snake_case`);
  if (kind === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end with _total`);
  if (kind !== 'counter' && name.endsWith('_total')) throw new Error(`${kind} ${name} must not end with _total`);
  if (/_ms$|_milliseconds$/.test(name)) throw new Error(`metric ${name}: use base units (_seconds)`);
}

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** Registry to use; the process registry by default. */
  register?: Registry;
}

/** Returns the already-registered metric of that name, so modules loaded twice share one. */
function existing<T>(register: Registry, name: string): T | undefined {
  return register.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string = string>(opts: MetricOptions<L>): Counter<L> {
  checkName(opts.name, 'counter');
  const register = opts.register ?? registry;
  return (
    existing<Counter<L>>(register, opts.name) ??
    new Counter<L>({ name: opts.name, help: opts.help, labelNames: opts.labelNames ?? [], registers: [register] })
  );
}

export function gauge<L extends string = string>(
  opts: MetricOptions<L> & { collect?: (this: Gauge<L>) => void | Promise<void> },
): Gauge<L> {
  checkName(opts.name, 'gauge');
  const register = opts.register ?? registry;
  return (
    existing<Gauge<L>>(register, opts.name) ??
    new Gauge<L>({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames ?? [],
      registers: [register],
      collect: opts.collect,
    })
  );
}

/** Latency buckets in seconds, from 1 ms to 30 s. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function histogram<L extends string = string>(opts: MetricOptions<L> & { buckets?: number[] }): Histogram<L> {
  checkName(opts.name, 'histogram');
  const register = opts.register ?? registry;
  return (
    existing<Histogram<L>>(register, opts.name) ??
    new Histogram<L>({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames ?? [],
      buckets: opts.buckets ?? LATENCY_BUCKETS,
      registers: [register],
    })
  );
}

/** `cdp_build_info{service,version} 1`, set once at start. */
export function setBuildInfo(service: string, version: string): void {
  gauge({ name: 'cdp_build_info', help: 'Build metadata; always 1', labelNames: ['service', 'version'] as const })
    .labels(service, version)
    .set(1);
}
