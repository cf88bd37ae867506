import { HttpError } from '@cdp/http';
import { parseWorkspace } from '@cdp/workspace';
import { configView, dryRun, type AdminDeps } from './admin';
import { ViolationSamples } from './violations';

const workspace = parseWorkspace(
  JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [
      {
        id: 'web',
        name: 'Web',
        spaceId: 'main',
        writeKeys: ['wk'],
        trackingPlan: {
          id: 'web-plan',
          events: [{ name: 'Order Completed', properties: { total: { type: 'number', minimum: 0 } } }],
          enforcement: { violations: 'omit' },
        },
        transformations: [{ type: 'rename_event', from: 'Order Completed', to: 'Purchase' }],
      },
    ],
    destinations: [
      { id: 'hook', name: 'Hook', type: 'webhook', settings: { url: 'http://127.0.0.1:1/hook' } },
      {
        id: 'audit',
        name: 'Audit',
        type: 'webhook',
        settings: { url: 'http://127.0.0.1:1/audit' },
        subscriptions: [{ id: 'pages', name: 'Pages', subscribe: 'type = "page"' }],
        filters: { rules: [{ name: 'No emails', if: 'all', actions: [{ type: 'drop_properties', fields: { properties: ['email'] } }] }] },
      },
    ],
    connections: [
      { sourceId: 'web', destinationId: 'hook', transformations: [{ type: 'drop_event', if: 'userId = "blocked"' }] },
      { sourceId: 'web', destinationId: 'audit' },
    ],
  }),
  { format: 'json' },
);

const deps = (regulated?: string): AdminDeps => ({
  workspace: () => workspace,
  samples: new ViolationSamples(),
  regulation: (spaceId, userId) =>
    userId === regulated ? { regulationId: 'r1', type: 'SUPPRESS_ONLY', userId, spaceId, requestedAt: '2026-12-01T00:00:00Z' } : undefined,
});

const order = (more: Record<string, unknown> = {}) => ({
  sourceId: 'web',
  message: { type: 'track', event: 'Order Completed', userId: 'u1', properties: { total: -5, email: 'a@b.co' }, ...more },
});

describe('dry-run', () => {
  it('shows each step: plan (with its violations), transformations, and per destination every check up to the jobs', () => {
    const run = dryRun(order(), deps());
    expect(run.version).toBe(workspace.version);
    expect(run.dropped).toBeUndefined();
    const steps = run.steps.map((s) => [s.step, s.destinationId ?? '', s.subscriptionId ?? '', s.outcome, s.reason ?? '']);
    expect(steps).toEqual([
      ['regulation', '', '', 'passed', ''],
      ['tracking_plan', '', '', 'passed', ''],
      ['source_transformations', '', '', 'passed', ''],
      ['integrations', 'hook', '', 'passed', ''],
      ['connection_transformations', 'hook', '', 'passed', ''],
      ['filters', 'hook', '', 'passed', ''],
      ['filter_rules', 'hook', '', 'passed', ''],
      ['subscription', 'hook', 'default', 'job', ''],
      ['integrations', 'audit', '', 'passed', ''],
      ['filters', 'audit', '', 'passed', ''],
      ['filter_rules', 'audit', '', 'passed', ''],
      ['subscription', 'audit', 'pages', 'skipped', 'subscription_condition'],
    ]);
    const plan = run.steps[1];
    expect(plan.violations?.map((v) => [v.rule, v.outcome])).toEqual([
      ['unplanned_property', 'allowed'],
      ['minimum:properties.total', 'omitted'],
    ]);
    expect(plan.message?.properties).toEqual({ email: 'a@b.co' });
    expect(run.steps[2].message?.event).toBe('Purchase');
    // The audit filter's copy is shown where it changed the message.
    expect(run.steps[10].message?.properties).toEqual({});
    expect(run.jobs).toEqual([
      expect.objectContaining({
        destinationId: 'hook',
        subscriptionId: 'default',
        payload: expect.objectContaining({ event: 'Purchase' }),
      }),
    ]);
  });

  it('shows why an event goes nowhere: a regulation, or a connection transformation for one destination', () => {
    expect(dryRun(order(), deps('u1'))).toMatchObject({
      dropped: { reason: 'regulated' },
      steps: [{ step: 'regulation', outcome: 'dropped', detail: 'SUPPRESS_ONLY (r1)' }],
      jobs: [],
    });
    const blocked = dryRun(order({ userId: 'blocked' }), deps());
    expect(blocked.steps.find((s) => s.destinationId === 'hook' && s.outcome !== 'passed')).toEqual({
      step: 'connection_transformations',
      destinationId: 'hook',
      outcome: 'skipped',
      reason: 'transformation_drop',
    });
    expect(blocked.jobs).toEqual([]);
  });

  it('a forced replay shows the replay id its jobs are keyed with', () => {
    const run = dryRun({ ...order(), replay: { id: 'rp1', destinations: ['hook'], force: true } }, deps());
    expect(run.steps.filter((s) => s.step === 'replay').map((s) => [s.destinationId, s.outcome])).toEqual([
      ['hook', 'passed'],
      ['audit', 'skipped'],
    ]);
    expect(run.jobs).toEqual([expect.objectContaining({ destinationId: 'hook', replayId: 'rp1' })]);
  });

  it('refuses what it cannot run with 400 (or 404 for an unknown source), naming the field', () => {
    const status = (body: unknown) => {
      try {
        dryRun(body, deps());
      } catch (error) {
        if (error instanceof HttpError) return `${error.status} ${error.code}: ${error.message}`;
        throw error;
      }
      return 'ran';
    };
    expect(status({ message: {} })).toMatch(/^400 invalid_request_error: sourceId: /);
    expect(status({ sourceId: 'web', message: { type: 'nope' } })).toMatch(/^400 invalid_request_error: message\.type: /);
    expect(status({ sourceId: 'web', message: { type: 'track' }, extra: 1 })).toMatch(/^400 /);
    expect(status({ sourceId: 'nope', message: { type: 'track' } })).toMatch(/^404 not_found: unknown source "nope"/);
    expect(status({ sourceId: 'web', message: { type: 'identify', userId: 'u' } })).toBe('ran');
  });
});

describe('config view', () => {
  it('shows the version in force and its compiled plans', () => {
    expect(configView(workspace)).toMatchObject({
      version: workspace.version,
      trackingPlans: [{ sourceId: 'web', planId: 'web-plan', events: ['Order Completed'], identify: false, group: false, common: false }],
    });
  });
});
