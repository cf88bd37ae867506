import { promises as dns } from 'node:dns';
import { errorFields, type Logger } from '@cdp/log';
import { clientMetrics } from './metrics';

/** Where the directors are: base URLs such as `http://10.0.0.7:8080`, no trailing slash. */
export interface DirectorDiscovery {
  /** The current set (may be empty before the first successful DNS answer). */
  directors(): readonly string[];
  /** Ends periodic refreshing. */
  stop(): void;
  /** A director could not be reached: look again soon (DNS: at most once per `minRefreshGapMs`). */
  unreachable?(): void;
}

function normalize(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

/** A fixed list (`DIRECTOR_RPC_URLS`, local runs). */
export function staticDiscovery(urls: readonly string[]): DirectorDiscovery {
  const list = [...new Set(urls.map(normalize).filter(Boolean))];
  if (list.length === 0) throw new Error('staticDiscovery: no director URL');
  clientMetrics().directorsKnown.set(list.length);
  return { directors: () => list, stop: () => undefined };
}

/** Resolves a host name to its IPv4 addresses (all A records). */
export type Resolve4 = (host: string) => Promise<string[]>;

export interface DnsDiscoveryOptions {
  /** A headless Service name, `host[:port]` (`DIRECTOR_RPC_SERVICE`). */
  service: string;
  /** Port when `service` names none: the director's RPC port. */
  defaultPort?: number;
  refreshMs: number;
  logger: Logger;
  /** node:dns by default; tests inject their own. */
  resolve4?: Resolve4;
  /** Least time between two lookups asked for by `unreachable()` (default 1 s). */
  minRefreshGapMs?: number;
  /** Date.now by default. */
  now?: () => number;
}

export function parseServiceName(service: string, defaultPort: number): { host: string; port: number } {
  const match = /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(service.trim());
  if (!match) throw new Error(`DIRECTOR_RPC_SERVICE must be host[:port], got ${JSON.stringify(service)}`);
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port < 1 || port > 65535) throw new Error(`DIRECTOR_RPC_SERVICE port out of range: ${port}`);
  return { host: match[1], port };
}

/**
 * Every pod behind a headless Service: all A records of its name, resolved again every
 * `refreshMs`. A failed or empty answer keeps the last good set (a DNS hiccup must not leave
 * the client with no director while the directors themselves are fine).
 */
export class DnsDiscovery implements DirectorDiscovery {
  private current: readonly string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly host: string;
  private readonly port: number;
  private readonly resolve4: Resolve4;
  private readonly now: () => number;
  private lastLookupAt = -Infinity;
  private lookup: Promise<boolean> | undefined;

  constructor(private readonly options: DnsDiscoveryOptions) {
    ({ host: this.host, port: this.port } = parseServiceName(options.service, options.defaultPort ?? 8080));
    this.resolve4 = options.resolve4 ?? ((host) => dns.resolve4(host));
    this.now = options.now ?? Date.now;
  }

  /**
   * A pod went away (rolling restart, eviction): resolve now rather than at the next period, so
   * retries find its replacement; rate-limited, and never two lookups at once.
   */
  unreachable(): void {
    if (this.stopped || this.lookup || this.now() - this.lastLookupAt < (this.options.minRefreshGapMs ?? 1_000)) return;
    void this.refresh();
  }

  directors(): readonly string[] {
    return this.current;
  }

  /** Resolves once and starts refreshing; resolves even when DNS fails (the refresh keeps trying). */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  /** One resolution; returns whether it produced a set. */
  refresh(): Promise<boolean> {
    this.lookup ??= this.resolveOnce().finally(() => {
      this.lookup = undefined;
    });
    return this.lookup;
  }

  private async resolveOnce(): Promise<boolean> {
    this.lastLookupAt = this.now();
    let addresses: string[];
    try {
      addresses = await this.resolve4(this.host);
    } catch (error) {
      clientMetrics().discoveryRefreshes.inc({ outcome: 'failed' });
      this.options.logger.warn(
        { host: this.host, kept: this.current.length, ...errorFields(error) },
        'director DNS lookup failed; keeping the last good set',
      );
      return false;
    }
    if (addresses.length === 0) {
      clientMetrics().discoveryRefreshes.inc({ outcome: 'empty' });
      this.options.logger.warn(
        { host: this.host, kept: this.current.length },
        'director DNS lookup returned no address; keeping the last good set',
      );
      return false;
    }
    clientMetrics().discoveryRefreshes.inc({ outcome: 'ok' });
    const next = [...new Set(addresses)].sort().map((ip) => `http://${ip}:${this.port}`);
    if (next.join() !== this.current.join()) this.options.logger.info({ host: this.host, directors: next }, 'director set changed');
    this.current = next;
    clientMetrics().directorsKnown.set(next.length);
    return true;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule());
    }, this.options.refreshMs);
    this.timer.unref();
  }
}
