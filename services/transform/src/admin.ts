import { z } from '@cdp/config';
import { envelopeSchema, segmentMessageSchema, replaySchema, type Regulation } from '@cdp/events';
import { HttpError, type AdminAppOptions } from '@cdp/http';
import type { Workspace } from '@cdp/workspace';
import type { FunctionRegistry, FunctionTrace } from './functions/functions';
import { jobsFor } from './jobs';
import { compilePlan } from './plan';
import { route, type TraceStep } from './routing';
import type { ViolationSamples } from './violations';

/**
 * transform's admin API (libs/http admin server, ADMIN_TOKEN): the workspace version in force and
 * its compiled plans, the sampled tracking-plan violations, and a dry-run of one event through
 * regulations, plan, transformations, routing and filters for every destination, with each
 * step's result. The dry-run sends nothing, counts nothing and changes no state.
 */

export interface AdminDeps {
  workspace: () => Workspace;
  samples: ViolationSamples;
  regulation: (spaceId: string, userId: string) => Regulation | undefined;
  /** Insert functions; without them `code` transformations pass unrun, as in the stream. */
  functions?: FunctionRegistry;
}

const dryRunSchema = z.strictObject({
  sourceId: z.string().min(1),
  /** The Segment message as an SDK sends it (a messageId is made up when absent). */
  message: z.record(z.string(), z.unknown()),
  /** As on a replayed envelope: only these destinations, and `force` shows the replay id in the jobs' key. */
  replay: replaySchema.optional(),
  /** When the event was received; now by default. */
  receivedAt: z.iso.datetime({ offset: true }).optional(),
});

function invalid(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[] = []): HttpError {
  const details = issues.map((i) => `${[...prefix, ...i.path].map(String).join('.') || '(body)'}: ${i.message}`).join('; ');
  return new HttpError(400, 'invalid_request_error', details);
}

export interface DryRunAnswer {
  version: string;
  sourceId: string;
  /** Why the whole event goes nowhere, if it does. */
  dropped?: { reason: string; detail?: string };
  steps: TraceStep[];
  /** Each insert-function call, in order: outcome, error, console output, time. */
  functions: FunctionTrace[];
  /** The jobs transform would send: one per (destination, subscription), with the payload the director would map. */
  jobs: ReturnType<typeof jobsFor>;
}

/** Runs one event through routing with a trace; throws HttpError for a request that cannot be run. */
export function dryRun(body: unknown, deps: AdminDeps): DryRunAnswer {
  const parsed = dryRunSchema.safeParse(body);
  if (!parsed.success) throw invalid(parsed.error.issues);
  const { sourceId, replay, receivedAt } = parsed.data;
  const workspace = deps.workspace();
  if (!workspace.source(sourceId))
    throw new HttpError(404, 'not_found', `unknown source "${sourceId}" in workspace version ${workspace.version}`);
  const raw = parsed.data.message;
  const messageId = typeof raw.messageId === 'string' && raw.messageId !== '' ? raw.messageId : `dry-run-${Date.now()}`;
  const message = segmentMessageSchema.safeParse({ ...raw, messageId });
  if (!message.success) throw invalid(message.error.issues, ['message']);
  const envelope = envelopeSchema.parse({
    v: 1,
    sourceId,
    messageId,
    receivedAt: receivedAt ?? new Date().toISOString(),
    message: message.data,
    ...(replay ? { replay } : {}),
  });
  const steps: TraceStep[] = [];
  const functions: FunctionTrace[] = [];
  const runCode = deps.functions?.dryRunner(functions);
  const routing = route(envelope, workspace, { regulation: deps.regulation, trace: steps, ...(runCode ? { runCode } : {}) });
  return {
    version: workspace.version,
    sourceId,
    ...(routing.dropped ? { dropped: routing.dropped } : {}),
    steps,
    functions,
    jobs: jobsFor(envelope, routing.routes),
  };
}

/** The version in force and what was compiled for it. */
export function configView(workspace: Workspace, functions?: FunctionRegistry) {
  return {
    version: workspace.version,
    loadedAt: workspace.loadedAt.toISOString(),
    summary: workspace.summary(),
    trackingPlans: workspace.config.sources
      .filter((s) => s.trackingPlan)
      .map((s) => {
        const plan = s.trackingPlan!;
        const compiled = compilePlan(plan); // compiled here if no event of the source came yet
        return {
          sourceId: s.id,
          planId: plan.id ?? s.id,
          events: [...compiled.events.keys()],
          identify: compiled.identify !== undefined,
          group: compiled.group !== undefined,
          common: compiled.common !== undefined,
          enforcement: plan.enforcement,
        };
      }),
    functions: functions?.list() ?? [],
  };
}

export function adminRoutes(deps: AdminDeps): AdminAppOptions['routes'] {
  return (app) => {
    app.get('/v1/config', (_req, res) => {
      res.json({ data: configView(deps.workspace(), deps.functions) });
    });
    app.get('/v1/violations', (req, res) => {
      const source = typeof req.query.source === 'string' && req.query.source !== '' ? req.query.source : undefined;
      const limitText = typeof req.query.limit === 'string' ? req.query.limit : undefined;
      const limit = limitText === undefined ? 100 : Number(limitText);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new HttpError(400, 'invalid_request_error', 'limit must be an integer from 1 to 1000');
      }
      res.json({ data: { violations: deps.samples.list(source, limit) } });
    });
    app.post('/v1/dry-run', (req, res) => {
      res.json({ data: dryRun(req.body, deps) });
    });
  };
}
