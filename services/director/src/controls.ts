import { parseDestinationControls, type ConsulClient, type ConsulKeys, type ConsulWatch, type KvEntry } from '@cdp/consul';
import { errorFields, type Logger } from '@cdp/log';
import type { OperatorControl } from './engine';

/** Follows operator controls with a blocking-query watch; applies within one Consul round trip. */
export class ControlWatcher {
  private controls = new Map<string, OperatorControl>();
  private watch: ConsulWatch<KvEntry[]> | undefined;

  constructor(
    private readonly consul: ConsulClient,
    private readonly keys: ConsulKeys,
    private readonly logger: Logger,
    private readonly onChange: () => void,
  ) {}

  get(destinationId: string): OperatorControl | undefined {
    return this.controls.get(destinationId);
  }

  start(): void {
    const watch = this.consul.watch(this.consul.kv.prefix(this.keys.destinations), {
      wait: '30s',
      backoffFactorMs: 100,
      backoffMaxMs: 5_000,
    });
    watch.on('change', (items) => {
      const controls = parseDestinationControls(this.keys, items, (key, reason) =>
        this.logger.warn({ key, reason }, 'invalid destination control ignored'),
      );
      const next = new Map(
        [...controls].map(([id, c]) => [id, { paused: c.paused, priority: c.priority, rateLimitPerSecond: c.rateLimitPerSecond }]),
      );
      // The watch also wakes when only other keys moved (Consul's index is not per key): act on a real change only.
      if (JSON.stringify([...next]) === JSON.stringify([...this.controls])) return;
      this.controls = next;
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
