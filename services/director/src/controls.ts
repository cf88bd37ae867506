import { z } from '@cdp/config';
import { errorFields, type Logger } from '@cdp/log';
import type { OperatorControl } from './engine';

/** Value of `<prefix>destinations/<id>/control`; "change QoS with one write". */
export const controlSchema = z.looseObject({
  paused: z.boolean().optional(),
  priority: z.number().int().min(-100).max(100).optional(),
  /** Requests per second for this destination on each director; overrides the workspace limit. */
  rateLimitPerSecond: z.number().positive().optional(),
});

interface KvItem {
  Key: string;
  Value: string | null;
}

/** Parses a recursive read of `<prefix>destinations/`; bad values are reported and ignored. */
export function parseControls(prefix: string, items: readonly KvItem[], onInvalid?: (key: string, reason: string) => void): Map<string, OperatorControl> {
  const base = `${prefix}destinations/`;
  const out = new Map<string, OperatorControl>();
  for (const item of items) {
    if (!item.Key.startsWith(base) || !item.Key.endsWith('/control')) continue;
    const id = item.Key.slice(base.length, -'/control'.length);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) continue;
    try {
      const parsed = controlSchema.parse(JSON.parse(item.Value ?? '{}'));
      out.set(id, { paused: parsed.paused, priority: parsed.priority, rateLimitPerSecond: parsed.rateLimitPerSecond });
    } catch (error) {
      onInvalid?.(item.Key, error instanceof Error ? error.message.slice(0, 200) : String(error));
    }
  }
  return out;
}

/** Follows operator controls with a blocking-query watch; applies within one Consul round trip. */
export class ControlWatcher {
  private controls = new Map<string, OperatorControl>();
  private watch: { end(): void } | undefined;

  constructor(
    private readonly consul: unknown,
    private readonly prefix: string,
    private readonly logger: Logger,
    private readonly onChange: () => void,
  ) {}

  get(destinationId: string): OperatorControl | undefined {
    return this.controls.get(destinationId);
  }

  start(): void {
    const c = this.consul as {
      watch(o: unknown): { on(e: string, f: (...a: unknown[]) => void): void; end(): void };
      kv: { get: unknown };
    };
    const watch = c.watch({
      method: c.kv.get,
      options: { key: `${this.prefix}destinations/`, recurse: true, wait: '30s' },
      backoffFactor: 100,
      backoffMax: 5_000,
    });
    watch.on('change', (data) => {
      const items = data === undefined ? [] : Array.isArray(data) ? (data as KvItem[]) : [data as KvItem];
      this.controls = parseControls(this.prefix, items, (key, reason) =>
        this.logger.warn({ key, reason }, 'invalid destination control ignored'),
      );
      this.logger.info({ controls: Object.fromEntries(this.controls) }, 'destination controls applied');
      this.onChange();
    });
    watch.on('error', (error) => this.logger.debug(errorFields(error), 'controls watch error; retrying'));
    this.watch = watch;
  }

  stop(): void {
    this.watch?.end();
  }
}
