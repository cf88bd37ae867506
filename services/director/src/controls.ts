import { parseDestinationControls, type ConsulKeys, type KvEntry } from '@cdp/consul';
import { errorFields, type Logger } from '@cdp/log';
import type { OperatorControl } from './engine';

/** Follows operator controls with a blocking-query watch; applies within one Consul round trip. */
export class ControlWatcher {
  private controls = new Map<string, OperatorControl>();
  private watch: { end(): void } | undefined;

  constructor(
    private readonly consul: unknown,
    private readonly keys: ConsulKeys,
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
      options: { key: this.keys.destinations, recurse: true, wait: '30s' },
      backoffFactor: 100,
      backoffMax: 5_000,
    });
    watch.on('change', (data) => {
      const items = data === undefined ? [] : Array.isArray(data) ? (data as KvEntry[]) : [data as KvEntry];
      const controls = parseDestinationControls(this.keys, items, (key, reason) =>
        this.logger.warn({ key, reason }, 'invalid destination control ignored'),
      );
      this.controls = new Map(
        [...controls].map(([id, c]) => [id, { paused: c.paused, priority: c.priority, rateLimitPerSecond: c.rateLimitPerSecond }]),
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
