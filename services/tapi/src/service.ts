import { startOpsServer, listen, type OpsServer, type RunningServer } from '@cdp/http';
import { topicNames } from '@cdp/kafka';
import type { Logger } from '@cdp/log';
import { WorkspaceStore } from '@cdp/workspace';
import type { TapiConfig } from './config';
import { Pipeline } from './pipeline';
import { RateLimiter } from './rate-limit';
import { watchRuntimeConfig } from './runtime-config';
import { buildApp } from './server';

/**
 * Everything tapi runs, built from its config: workspace store → the pipeline (Kafka clusters,
 * spool, publisher, suppression follower) → public and ops servers. main.ts adds signals and
 * exit; integration tests start it in-process.
 */
export class TapiService {
  private constructor(
    readonly config: TapiConfig,
    readonly logger: Logger,
    readonly store: WorkspaceStore,
    readonly pipeline: Pipeline,
    readonly server: RunningServer,
    readonly ops: OpsServer,
    private readonly stopRuntimeWatch: () => void,
  ) {}

  get spool() {
    return this.pipeline.spool;
  }

  get publisher() {
    return this.pipeline.publisher;
  }

  get suppression() {
    return this.pipeline.suppression;
  }

  static async start(config: TapiConfig, logger: Logger): Promise<TapiService> {
    const store = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS, logger });
    const pipeline = await Pipeline.open(config, logger);
    const { spool, publisher, suppression } = pipeline;
    const stopRuntimeWatch = config.TAPI_RUNTIME_FILE
      ? watchRuntimeConfig(config.TAPI_RUNTIME_FILE, config.WORKSPACE_POLL_INTERVAL_MS, logger, (mode) => publisher.setForce(mode))
      : () => undefined;
    publisher.start();
    suppression?.start();

    const rateLimiter = new RateLimiter();
    store.on('change', (next) => rateLimiter.retain(new Set(next.config.sources.map((s) => s.id))));
    const app = buildApp({
      logger,
      workspace: () => store.current(),
      publish: (records) => publisher.publish(records),
      isSuppressed: suppression ? (space, user) => suppression.set.has(space, user) : undefined,
      rateLimiter,
      limits: {
        maxEventBytes: config.MAX_EVENT_BYTES,
        maxBatchBytes: config.MAX_BATCH_BYTES,
        maxBatchEvents: config.MAX_BATCH_EVENTS,
        maxCompressedBytes: config.MAX_COMPRESSED_BYTES,
        maxExpandedBytes: config.TAPI_MAX_EXPANDED_BYTES,
      },
      trustProxy: config.TRUST_PROXY,
      publicHost: config.TAPI_PUBLIC_HOST,
    });
    const ops = await startOpsServer({
      port: config.OPS_PORT,
      host: config.HOST,
      logger,
      checks: [
        { name: 'spool', check: async () => ({ ok: !spool.isNearFull, detail: `${spool.depth} events, ${spool.bytes} bytes` }) },
        ...(suppression ? [{ name: 'suppression', check: async () => ({ ok: suppression.ready, detail: `${suppression.set.size} users` }) }] : []),
        { name: 'kafka', check: async () => ({ ok: true, detail: publisher.describe() }) },
      ],
    });
    const server = await listen(app, config.PORT, config.HOST);
    logger.info({ port: server.port, opsPort: ops.port, topic: topicNames(config.CDP_TOPIC_PREFIX).ingest, secondary: Boolean(pipeline.secondary) }, 'tapi started');
    return new TapiService(config, logger, store, pipeline, server, ops, stopRuntimeWatch);
  }

  get url(): string {
    return this.server.url;
  }

  /**
   * Graceful stop: not ready → stop taking requests (in-flight ones finish and are stored) →
   * drain the spool to Kafka while it is reachable → close clients. What is not drained stays
   * in the spool for the next start.
   */
  async stop(drainMs = 10_000): Promise<void> {
    this.ops.setDraining();
    await this.server.close(5_000);
    this.stopRuntimeWatch();
    await this.publisher.stop();
    if (this.spool.depth > 0) {
      const drained = await this.publisher.drainAll(drainMs);
      this.logger[drained ? 'info' : 'warn']({ left: this.spool.depth }, drained ? 'spool drained before exit' : 'spool not fully drained; kept for the next start');
    }
    await this.pipeline.close();
    this.store.close();
    await this.ops.close(1_000);
  }
}
