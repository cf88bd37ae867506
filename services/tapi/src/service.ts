import type { RequestListener } from 'node:http';
import { listen, type ReadinessCheck, type RunningServer } from '@cdp/http';
import { topicNames } from '@cdp/kafka';
import type { Logger } from '@cdp/log';
import type { BuiltService, ShutdownHooks } from '@cdp/service';
import type { WorkspaceStore } from '@cdp/workspace';
import type { TapiConfig } from './config';
import type { Pipeline } from './pipeline';

/** Time kept from the shutdown deadline for what follows the spool drain (closing clients, ops server). */
const CLOSE_RESERVE_MS = 8_000;

export interface TapiParts {
  store: WorkspaceStore;
  pipeline: Pipeline;
  /** The public API (built by build.ts), served from start(). */
  app: RequestListener;
  stopRuntimeWatch: () => void;
}

/**
 * tapi once built (build.ts): the public API over the pipeline (Kafka clusters, spool, publisher,
 * suppression follower). start() starts the publisher's loops and the suppression follower, then
 * listens; the skeleton runs its readiness checks and shutdown hooks.
 */
export class TapiService implements BuiltService {
  private server: RunningServer | undefined;
  readonly readiness: ReadinessCheck[];
  /**
   * Not ready (the skeleton) → stop taking requests (in-flight ones finish and are stored) →
   * drain the spool to Kafka while it is reachable, within the shutdown deadline less what
   * closing needs → close clients. What is not drained stays in the spool for the next start.
   */
  readonly shutdown: ShutdownHooks;

  constructor(
    private readonly config: TapiConfig,
    private readonly logger: Logger,
    private readonly parts: TapiParts,
  ) {
    const { spool, publisher, suppression } = parts.pipeline;
    this.readiness = [
      { name: 'spool', check: async () => ({ ok: !spool.isNearFull, detail: `${spool.depth} events, ${spool.bytes} bytes` }) },
      ...(suppression
        ? [{ name: 'suppression', check: async () => ({ ok: suppression.ready, detail: `${suppression.set.size} users` }) }]
        : []),
      { name: 'kafka', check: async () => ({ ok: true, detail: publisher.describe() }) },
    ];
    this.shutdown = {
      stopInputs: { 'public-server': () => this.server?.close(5_000), 'runtime-file-watch': parts.stopRuntimeWatch },
      drain: { spool: () => this.drainSpool(Math.max(1_000, config.SHUTDOWN_TIMEOUT_MS - CLOSE_RESERVE_MS)) },
      closeClients: { pipeline: () => parts.pipeline.close(), workspace: () => parts.store.close() },
    };
  }

  get spool() {
    return this.parts.pipeline.spool;
  }

  get publisher() {
    return this.parts.pipeline.publisher;
  }

  get suppression() {
    return this.parts.pipeline.suppression;
  }

  /** The public API's URL, once started. */
  get url(): string {
    if (!this.server) throw new Error('tapi is not started');
    return this.server.url;
  }

  async start(): Promise<Record<string, unknown>> {
    this.publisher.start();
    this.suppression?.start();
    this.server = await listen(this.parts.app, this.config.PORT, this.config.HOST);
    return {
      port: this.server.port,
      topic: topicNames(this.config.CDP_TOPIC_PREFIX).ingest,
      secondary: Boolean(this.parts.pipeline.secondary),
    };
  }

  private async drainSpool(drainMs: number): Promise<void> {
    await this.publisher.stop();
    if (this.spool.depth === 0) return;
    const drained = await this.publisher.drainAll(drainMs);
    this.logger[drained ? 'info' : 'warn'](
      { left: this.spool.depth },
      drained ? 'spool drained before exit' : 'spool not fully drained; kept for the next start',
    );
  }
}
