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
    hook('amp', 'Amplitude', {
      type: 'actions-amplitude',
      settings: { region: 'EU' },
      subscriptions: [{ id: 't', name: 'T', action: 'trackEvent', subscribe: 'all' }],
    }),
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
    expect(route(event({ integrations: { All: false } }), workspace()).skipped.map((s) => s.reason)).toEqual([
      'integrations',
      'integrations',
      'integrations',
    ]);
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
    expect(
      route(replayed, workspace())
        .skipped.filter((s) => s.reason === 'replay')
        .map((s) => s.destinationId),
    ).toEqual(['hook', 'amp']);
    // integrations still apply to a replay.
    expect(targets(event({ integrations: { Multi: false } }, { replay: { id: 'r1', destinations: ['multi'], force: false } }))).toEqual([]);
  });

  it('applies type and event-name filters of the destination and of the connection', () => {
    const ws = workspace({
      destinations: [
        {
          id: 'tracks',
          name: 'Tracks',
          type: 'webhook',
          settings: { url: 'http://127.0.0.1:1/t' },
          filters: { allowTypes: ['track'], denyEvents: ['Heartbeat'] },
        },
      ],
      connections: [{ sourceId: 'web', destinationId: 'tracks', filters: { allowEvents: ['Order Completed'] } }],
    });
    expect(targets(event(), ws)).toContain('tracks/default');
    expect(targets(event({ event: 'Heartbeat' }), ws)).not.toContain('tracks/default');
    expect(targets(event({ event: 'Signed Up' }), ws)).not.toContain('tracks/default');
    expect(targets(event({ type: 'identify', event: undefined }), ws)).not.toContain('tracks/default');
  });

  it('a subscription gets the events its subscribe condition matches; a condition that cannot be evaluated gets none', () => {
    const ws = workspace({
      destinations: [
        {
          id: 'cond',
          name: 'Cond',
          type: 'webhook',
          settings: { url: 'http://127.0.0.1:1/c' },
          subscriptions: [
            { id: 'tracks', name: 'Tracks', subscribe: 'type = "track"' },
            { id: 'big', name: 'Big', subscribe: 'properties.total > 100' },
            { id: 'broken', name: 'Broken', subscribe: 'nosuch(type)' },
          ],
        },
      ],
    });
    expect(targets(event({ properties: { total: 5 } }), ws).filter((t) => t.startsWith('cond/'))).toEqual(['cond/tracks']);
    expect(targets(event({ properties: { total: 500 } }), ws).filter((t) => t.startsWith('cond/'))).toEqual(['cond/tracks', 'cond/big']);
    expect(targets(event({ type: 'identify', event: undefined }), ws).filter((t) => t.startsWith('cond/'))).toEqual([]);
    const skipped = route(event(), ws).skipped.filter((s) => s.destinationId === 'cond');
    expect(skipped).toEqual([
      { destinationId: 'cond', subscriptionId: 'big', reason: 'subscription_condition' },
      {
        destinationId: 'cond',
        subscriptionId: 'broken',
        reason: 'subscription_condition_error',
        detail: expect.stringMatching(/unknown function 'nosuch'/),
      },
    ]);
  });

  describe('destination filter rules (Segment order: sample, drop, drop properties, allow properties)', () => {
    const withRules = (rules: unknown[], connectionRules: unknown[] = []) =>
      workspace({
        destinations: [{ id: 'f', name: 'F', type: 'webhook', settings: { url: 'http://127.0.0.1:1/f' }, filters: { rules } }],
        connections: [{ sourceId: 'web', destinationId: 'f', filters: { rules: connectionRules } }],
      });
    const routed = (e: Envelope, ws: Workspace, random?: () => number) =>
      route(e, ws, { random }).routes.find((r) => r.destination.id === 'f');
    const reasonFor = (e: Envelope, ws: Workspace, random?: () => number) =>
      route(e, ws, { random }).skipped.find((s) => s.destinationId === 'f')?.reason;

    it('drop when the condition matches, keep otherwise; the connection rules apply too', () => {
      const ws = withRules(
        [{ name: 'test users', if: 'match(userId, "test_*")', actions: [{ type: 'drop' }] }],
        [{ name: 'eu', if: 'context.region = "eu"', actions: [{ type: 'drop' }] }],
      );
      expect(reasonFor(event({ userId: 'test_1' }), ws)).toBe('filter_drop');
      expect(routed(event({ userId: 'real' }), ws)).toBeDefined();
      expect(reasonFor(event({ userId: 'real', context: { region: 'eu' } }), ws)).toBe('filter_drop');
      // A disabled rule does nothing.
      expect(
        routed(event({ userId: 'test_1' }), withRules([{ name: 'off', enabled: false, if: 'all', actions: [{ type: 'drop' }] }])),
      ).toBeDefined();
    });

    it('fails closed: a rule whose condition does not parse, or cannot be evaluated, drops the event', () => {
      const ws = withRules([{ name: 'typo', if: 'userId = ', actions: [{ type: 'drop_properties', fields: { '': ['userId'] } }] }]);
      expect(reasonFor(event(), ws)).toBe('filter_error');
      // `in` over a value that is not a list (here a string) cannot be decided.
      const notList = withRules([
        { name: 'not a list', if: '"u" in userId', actions: [{ type: 'drop_properties', fields: { '': ['userId'] } }] },
      ]);
      expect(reasonFor(event({ userId: 'u1' }), notList)).toBe('filter_error');
      expect(routed(event({ userId: undefined }), notList)).toBeDefined(); // a missing list holds nothing: false
    });

    it('sample: by path the same value always draws the same; without a path the draw decides', () => {
      const ws = withRules([{ name: 'half', if: 'all', actions: [{ type: 'sample', percent: 50, path: 'userId' }] }]);
      const kept = Array.from({ length: 400 }, (_, i) => routed(event({ userId: `u${i}` }), ws) !== undefined).filter(Boolean).length;
      expect(kept).toBeGreaterThan(150);
      expect(kept).toBeLessThan(250);
      for (let i = 0; i < 20; i++)
        expect(routed(event({ userId: 'same' }), ws) !== undefined).toBe(routed(event({ userId: 'same' }), ws) !== undefined);
      const unkeyed = withRules([{ name: 'ten', if: 'all', actions: [{ type: 'sample', percent: 10 }] }]);
      expect(routed(event(), unkeyed, () => 0.05)).toBeDefined();
      expect(reasonFor(event(), unkeyed, () => 0.5)).toBe('filter_sample');
      // Sample comes before drop: an event the sample leaves out counts as sampled.
      const both = withRules([{ name: 'x', if: 'all', actions: [{ type: 'drop' }, { type: 'sample', percent: 10 }] }]);
      expect(reasonFor(event(), both, () => 0.5)).toBe('filter_sample');
      expect(reasonFor(event(), both, () => 0.05)).toBe('filter_drop');
    });

    it('drop and allow properties change a copy of the message for this destination only', () => {
      const ws = withRules([
        {
          name: 'pii',
          if: 'all',
          actions: [{ type: 'drop_properties', fields: { '': ['userId'], properties: ['email'], 'context.traits': ['phone'] } }],
        },
        { name: 'only', if: 'type = "track"', actions: [{ type: 'allow_properties', fields: { properties: ['total', 'email'] } }] },
      ]);
      const e = event({ properties: { total: 3, email: 'a@b', extra: 1 }, context: { traits: { phone: '1', name: 'n' } } });
      const routing = route(e, ws);
      const f = routing.routes.find((r) => r.destination.id === 'f')!;
      expect(f.message).toEqual({ ...e.message, userId: undefined, properties: { total: 3 }, context: { traits: { name: 'n' } } });
      expect('userId' in f.message).toBe(false);
      // Other destinations and the event itself are untouched.
      expect(routing.routes.find((r) => r.destination.id === 'hook')!.message).toBe(e.message);
      expect(e.message.properties).toEqual({ total: 3, email: 'a@b', extra: 1 });
      expect(jobsFor(e, [f])[0].payload).toBe(f.message);
    });
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

describe('route: regulations, tracking plan, per-connection transformations', () => {
  const ws = (source: Record<string, unknown> = {}, connections: Record<string, unknown>[] = []) =>
    parseWorkspace(
      JSON.stringify({
        spaces: [{ id: 'main', name: 'Main' }],
        sources: [{ id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk_web'], ...source }],
        destinations: ['a', 'b'].map((id) => ({
          id,
          name: id.toUpperCase(),
          type: 'webhook',
          settings: { url: `http://127.0.0.1:1/${id}` },
        })),
        connections: [
          { sourceId: 'web', destinationId: 'a', ...connections[0] },
          { sourceId: 'web', destinationId: 'b', ...connections[1] },
        ],
      }),
      { format: 'json' },
    );
  const regulation = (type: string) => (spaceId: string, userId: string) =>
    spaceId === 'main' && userId === 'u1'
      ? { regulationId: 'r', type: type as 'SUPPRESS_ONLY', userId, spaceId, requestedAt: '2026-12-04T00:00:00Z' }
      : undefined;

  it("drops every event of a suppressed or deleted user of the source's space; UNSUPPRESS lifts it", () => {
    for (const type of ['SUPPRESS_ONLY', 'SUPPRESS_WITH_DELETE', 'DELETE_ONLY']) {
      const routing = route(event(), ws(), { regulation: regulation(type) });
      expect(routing).toMatchObject({ routes: [], dropped: { reason: 'regulated' } });
    }
    expect(route(event(), ws(), { regulation: regulation('UNSUPPRESS') }).routes).toHaveLength(2);
    expect(route(event({ userId: 'u2' }), ws(), { regulation: regulation('SUPPRESS_ONLY') }).routes).toHaveLength(2);
    // A replay of a suppressed user's history is dropped too.
    const replayed = event({}, { replay: { id: 'r1', destinations: ['a'], force: true } });
    expect(route(replayed, ws(), { regulation: regulation('SUPPRESS_ONLY') }).dropped?.reason).toBe('regulated');
  });

  it("runs the plan before the source's transformations; a blocked event goes nowhere", () => {
    const source = {
      trackingPlan: {
        events: [{ name: 'Signed Up', properties: { plan: { type: 'string' } } }],
        enforcement: { unplannedEvents: 'block', unplannedProperties: 'omit' },
      },
      transformations: [{ type: 'rename_event', from: 'Signed Up', to: 'Signup Completed' }],
    };
    const routing = route(event({ event: 'Signed Up', properties: { plan: 'pro', secret: 'x' } }), ws(source));
    expect(routing.routes.map((r) => r.message)).toEqual([
      expect.objectContaining({ event: 'Signup Completed', properties: { plan: 'pro' } }),
      expect.objectContaining({ event: 'Signup Completed', properties: { plan: 'pro' } }),
    ]);
    expect(routing.plan).toEqual({ id: 'web', event: 'Signed Up', violations: [expect.objectContaining({ rule: 'unplanned_property' })] });
    const blocked = route(event({ event: 'Other' }), ws(source));
    expect(blocked).toMatchObject({ routes: [], dropped: { reason: 'plan_unplanned_event' }, plan: { event: '(unplanned)' } });
  });

  it("a connection's transformations change or drop the event for that destination only", () => {
    const connections = [
      {
        transformations: [
          { type: 'drop_properties', properties: ['properties.email'] },
          { type: 'rename_event', from: 'Order Completed', to: 'Purchase' },
        ],
      },
      { transformations: [{ id: 'no-tests', type: 'drop_event', if: 'match(userId, "u*")' }] },
    ];
    const e = event({ properties: { email: 'a@b.co', total: 3 } });
    const routing = route(e, ws({}, connections));
    expect(routing.routes.map((r) => [r.destination.id, r.message.event, r.message.properties])).toEqual([['a', 'Purchase', { total: 3 }]]);
    expect(routing.skipped).toEqual([{ destinationId: 'b', reason: 'transformation_drop' }]);
    expect(e.message.properties).toEqual({ email: 'a@b.co', total: 3 }); // the event itself is untouched
    // The connection's filters see the connection's transformed event.
    const filtered = route(e, ws({}, [{ ...connections[0], filters: { denyEvents: ['Purchase'] } }]));
    expect(filtered.routes.map((r) => r.destination.id)).toEqual(['b']);
    // A condition that cannot be evaluated drops it for that destination (fail closed).
    const broken = route(e, ws({}, [{ transformations: [{ id: 'bad', type: 'drop_event', if: 'length(1, 2)' }] }]));
    expect(broken.skipped).toEqual([{ destinationId: 'a', reason: 'transformation_error', detail: expect.stringMatching(/^bad: /) }]);
  });

  it('code transformations run through a CodeRunner when one is given (the extension point)', () => {
    const source = { transformations: [{ id: 'c', type: 'code', code: 'function (e) { return e }' }] };
    expect(route(event(), ws(source)).transformationsNotRun).toBe(1);
    const runCode = (_t: unknown, m: Record<string, unknown>) => ({ ...m, event: 'From Code' });
    const routing = route(event(), ws(source), { runCode });
    expect(routing.transformationsNotRun).toBe(0);
    expect(routing.routes[0].message.event).toBe('From Code');
    expect(route(event(), ws(source), { runCode: () => null }).dropped?.reason).toBe('transformation_drop');
    expect(route(event(), ws(source), { runCode: () => new Error('boom') }).dropped).toEqual({
      reason: 'transformation_error',
      detail: 'c: boom',
    });
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

  it('a forced replay puts its id into the idempotency key; a plain replay does not', () => {
    const plain = event({}, { replay: { id: 'r1', destinations: ['hook'], force: false } });
    expect(jobsFor(plain, route(plain, workspace()).routes)[0]).not.toHaveProperty('replayId');
    const forced = event({}, { replay: { id: 'r1', destinations: ['hook'], force: true } });
    expect(jobsFor(forced, route(forced, workspace()).routes)).toEqual([
      expect.objectContaining({ destinationId: 'hook', replayId: 'r1' }),
    ]);
  });
});
