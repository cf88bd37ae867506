import { envelopeSchema, type Envelope } from '@cdp/events';
import { parseWorkspace, type Workspace } from '@cdp/workspace';
import { jobsFor } from './jobs';
import { integrationEnabled, route } from './routing';

function workspace(extra: { destinations?: unknown[]; connections?: unknown[] } = {}): Workspace {
  const hook = (id: string, name: string, more: Record<string, unknown> = {}) => ({
    id,
    name,
    type: 'webhook',
    settings: { url: `http://127.0.0.1:1/${id}` },
    ...more,
  });
  const destinations = [
    hook('hook', 'My Hook'),
    hook('multi', 'Multi', {
      subscriptions: [
        { id: 'a', name: 'A', subscribe: 'all' },
        { id: 'b', name: 'B', subscribe: 'all' },
        { id: 'off', name: 'Off', subscribe: 'all', enabled: false },
      ],
    }),
    hook('amp', 'Amplitude', { type: 'actions-amplitude', settings: { region: 'EU' }, subscriptions: [{ id: 't', name: 'T', action: 'trackEvent', subscribe: 'all' }] }),
    hook('disabled', 'Disabled', { enabled: false }),
    hook('unconnected', 'Unconnected'),
    ...(extra.destinations ?? []),
  ];
  const ownConnections = new Set((extra.connections ?? []).map((c) => (c as { destinationId: string }).destinationId));
  const connected = destinations.map((d) => (d as { id: string }).id).filter((id) => id !== 'unconnected' && !ownConnections.has(id));
  return parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        { id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk_web'] },
        { id: 'other', name: 'Other', spaceId: 'main', writeKeys: ['wk_other'] },
      ],
      destinations,
      connections: [
        ...connected.map((destinationId) => ({ sourceId: 'web', destinationId })),
        { sourceId: 'other', destinationId: 'hook', enabled: false },
        ...(extra.connections ?? []),
      ],
    }),
    { format: 'json', file: 'routing-test.json' },
  );
}

function event(message: Record<string, unknown> = {}, more: Partial<Envelope> = {}): Envelope {
  return envelopeSchema.parse({
    v: 1,
    sourceId: 'web',
    messageId: 'm1',
    receivedAt: '2026-12-04T12:00:00.000Z',
    message: { type: 'track', event: 'Order Completed', messageId: 'm1', userId: 'u1', ...message },
    ...more,
  });
}

const targets = (e: Envelope, ws = workspace()) => route(e, ws).routes.map((r) => `${r.destination.id}/${r.subscription.id}`);

describe('route', () => {
  it('sends an event to each enabled subscription of each enabled, connected destination', () => {
    expect(targets(event())).toEqual(['hook/default', 'multi/a', 'multi/b', 'amp/t']);
    const skipped = route(event(), workspace()).skipped;
    expect(skipped).toEqual([{ destinationId: 'multi', subscriptionId: 'off', reason: 'subscription_disabled' }]);
  });

  it('sends nothing for a source whose only connection is disabled, or an unknown source', () => {
    expect(targets(event({}, { sourceId: 'other' }))).toEqual([]);
    expect(targets(event({}, { sourceId: 'nobody' }))).toEqual([]);
  });

  it('All: false sends nothing, unless a destination is named true or with settings', () => {
    expect(targets(event({ integrations: { All: false } }))).toEqual([]);
    expect(targets(event({ integrations: { all: false } }))).toEqual([]);
    expect(targets(event({ integrations: { All: false, 'My Hook': true } }))).toEqual(['hook/default']);
    expect(targets(event({ integrations: { All: false, Amplitude: { session_id: 1 } } }))).toEqual(['amp/t']);
    expect(route(event({ integrations: { All: false } }), workspace()).skipped.map((s) => s.reason)).toEqual(['integrations', 'integrations', 'integrations']);
  });

  it('a destination named false is left out, the others stay (All defaults to true)', () => {
    expect(targets(event({ integrations: { Amplitude: false } }))).toEqual(['hook/default', 'multi/a', 'multi/b']);
    expect(targets(event({ integrations: { All: true, Multi: false } }))).toEqual(['hook/default', 'amp/t']);
  });

  it('names are matched as the catalog spells them: exact case, catalog names of the type, the slug', () => {
    // "Webhooks" is the catalog's name of every webhook destination.
    expect(targets(event({ integrations: { Webhooks: false } }))).toEqual(['amp/t']);
    expect(targets(event({ integrations: { All: false, 'actions-amplitude': true } }))).toEqual(['amp/t']);
    // Names are case-sensitive, as in Segment: "amplitude" is not "Amplitude".
    expect(targets(event({ integrations: { amplitude: false } }))).toEqual(['hook/default', 'multi/a', 'multi/b', 'amp/t']);
  });

  it('a replayed event goes only to the destinations its replay names', () => {
    const replayed = event({}, { replay: { id: 'r1', destinations: ['multi'], force: false } });
    expect(targets(replayed)).toEqual(['multi/a', 'multi/b']);
    expect(route(replayed, workspace()).skipped.filter((s) => s.reason === 'replay').map((s) => s.destinationId)).toEqual(['hook', 'amp']);
    // integrations still apply to a replay.
    expect(targets(event({ integrations: { Multi: false } }, { replay: { id: 'r1', destinations: ['multi'], force: false } }))).toEqual([]);
  });

  it('applies type and event-name filters of the destination and of the connection', () => {
    const ws = workspace({
      destinations: [
        { id: 'tracks', name: 'Tracks', type: 'webhook', settings: { url: 'http://127.0.0.1:1/t' }, filters: { allowTypes: ['track'], denyEvents: ['Heartbeat'] } },
      ],
      connections: [{ sourceId: 'web', destinationId: 'tracks', filters: { allowEvents: ['Order Completed'] } }],
    });
    expect(targets(event(), ws)).toContain('tracks/default');
    expect(targets(event({ event: 'Heartbeat' }), ws)).not.toContain('tracks/default');
    expect(targets(event({ event: 'Signed Up' }), ws)).not.toContain('tracks/default');
    expect(targets(event({ type: 'identify', event: undefined }), ws)).not.toContain('tracks/default');
  });

  it('fails closed on FQL it cannot evaluate yet: subscription conditions and filter rules', () => {
    const ws = workspace({
      destinations: [
        { id: 'cond', name: 'Cond', type: 'webhook', settings: { url: 'http://127.0.0.1:1/c' }, subscriptions: [{ id: 's', name: 'S', subscribe: 'type = "track"' }] },
        { id: 'rules', name: 'Rules', type: 'webhook', settings: { url: 'http://127.0.0.1:1/r' }, filters: { rules: [{ name: 'x', if: 'all', actions: [{ type: 'drop' }] }] } },
      ],
    });
    const routing = route(event(), ws);
    expect(routing.routes.map((r) => r.destination.id)).not.toEqual(expect.arrayContaining(['cond']));
    expect(routing.routes.map((r) => r.destination.id)).not.toEqual(expect.arrayContaining(['rules']));
    expect(routing.skipped).toEqual(
      expect.arrayContaining([
        { destinationId: 'cond', subscriptionId: 's', reason: 'subscription_condition_unsupported' },
        { destinationId: 'rules', reason: 'filter_rules_unsupported' },
      ]),
    );
  });
});

describe('integrationEnabled (facade rules)', () => {
  it.each([
    [undefined, true],
    [{}, true],
    [{ All: false }, false],
    [{ ALL: false }, false],
    [{ All: 'no' }, true],
    [{ All: false, X: true }, true],
    [{ All: false, X: {} }, true],
    [{ All: false, X: null }, true],
    [{ X: false }, false],
    [{ All: true, X: false }, false],
    [{ x: false }, true],
  ])('%j → %s', (integrations, expected) => {
    expect(integrationEnabled(integrations, ['X'])).toBe(expected);
  });
});

describe('jobsFor', () => {
  it('one job per route with the raw message and the idempotency fields', () => {
    const e = event({ properties: { total: 3 } });
    const jobs = jobsFor(e, route(e, workspace()).routes);
    expect(jobs).toHaveLength(4);
    expect(jobs[1]).toEqual({
      sourceId: 'web',
      messageId: 'm1',
      destinationId: 'multi',
      subscriptionId: 'a',
      payload: e.message,
      receivedAt: '2026-12-04T12:00:00.000Z',
    });
  });
});
