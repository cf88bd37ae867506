import type { ServiceDefinition, ServiceDeps } from '@cdp/service';
import { WorkspaceStore } from '@cdp/workspace';
import { tapiEnv, type TapiConfig } from './config';
import { Pipeline } from './pipeline';
import { RateLimiter } from './rate-limit';
import { watchRuntimeConfig } from './runtime-config';
import { buildApp } from './server';
import { TapiService } from './service';

/** tapi from its config: workspace store → pipeline (Kafka clusters, spool, publisher, suppression) → public API. */
export async function build(config: TapiConfig, { logger }: ServiceDeps): Promise<TapiService> {
  const store = WorkspaceStore.open({ file: config.CDP_WORKSPACE_FILE, pollIntervalMs: config.WORKSPACE_POLL_INTERVAL_MS, logger });
  const pipeline = await Pipeline.open(config, logger);
  const { publisher, suppression } = pipeline;
  const stopRuntimeWatch = config.TAPI_RUNTIME_FILE
    ? watchRuntimeConfig(config.TAPI_RUNTIME_FILE, config.WORKSPACE_POLL_INTERVAL_MS, logger, (mode) => publisher.setForce(mode))
    : () => undefined;
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
  return new TapiService(config, logger, { store, pipeline, app, stopRuntimeWatch });
}

export const tapi: ServiceDefinition<TapiConfig, TapiService> = { name: 'tapi', env: tapiEnv, build };
