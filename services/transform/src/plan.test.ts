import { parseWorkspace, type TrackingPlan } from '@cdp/workspace';
import { checkPlan, compilePlan, objectSchema } from './plan';

/** A plan as the workspace loader gives it (defaults, frozen). */
function plan(spec: Record<string, unknown>): TrackingPlan {
  const ws = parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [{ id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk'], trackingPlan: spec }],
    }),
    { format: 'json' },
  );
  return ws.source('web')!.trackingPlan!;
}

const orderPlan = (enforcement: Record<string, string> = {}, more: Record<string, unknown> = {}) =>
  plan({
    events: [
      {
        name: 'Order Completed',
        properties: {
          orderId: { type: 'string', required: true },
          total: { type: ['number', 'integer'], minimum: 0 },
          currency: { type: 'string', enum: ['USD', 'EUR'] },
          email: { type: 'string', format: 'email' },
          items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string', required: true } } } },
          address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } } },
          note: { type: 'any' },
        },
      },
    ],
    identify: { traits: { email: { type: 'string', format: 'email' }, age: { type: 'integer', minimum: 0 } } },
    enforcement,
    ...more,
  });

const track = (properties: Record<string, unknown>, event = 'Order Completed') => ({
  type: 'track',
  event,
  messageId: 'm1',
  userId: 'u1',
  properties,
});
const good = {
  orderId: 'o1',
  total: 10,
  currency: 'USD',
  email: 'a@b.co',
  items: [{ sku: 's1' }],
  address: { city: 'X', zip: '12345' },
  note: [1],
};

describe('the plan as JSON Schema draft-07', () => {
  it('maps property rules: required to the parent, any to no type, nested objects and items', () => {
    expect(
      objectSchema({ a: { type: 'string', required: true }, b: { type: 'any' }, c: { type: 'array', items: { type: 'integer' } } }),
    ).toEqual({
      type: 'object',
      properties: { a: { type: 'string' }, b: {}, c: { type: 'array', items: { type: 'integer' } } },
      required: ['a'],
    });
  });
  it('is compiled once per workspace version (per plan object)', () => {
    const p = orderPlan();
    expect(compilePlan(p)).toBe(compilePlan(p));
    expect(compilePlan(orderPlan())).not.toBe(compilePlan(p));
  });
});

describe('checkPlan: track events', () => {
  it('a valid planned event passes unchanged, with no violation', () => {
    const message = track(good);
    const out = checkPlan(orderPlan({ violations: 'block', unplannedProperties: 'omit' }), message);
    expect(out).toEqual({ kind: 'keep', message, violations: [], event: 'Order Completed' });
  });

  it('unplanned events: allow counts them, block drops the event', () => {
    const message = track({ x: 1 }, 'Order completed'); // case-sensitive, as Segment
    const allowed = checkPlan(orderPlan(), message);
    expect(allowed).toMatchObject({ kind: 'keep', message, event: '(unplanned)' });
    expect(allowed.violations).toEqual([{ rule: 'unplanned_event', path: 'event', detail: expect.any(String), outcome: 'allowed' }]);
    const blocked = checkPlan(orderPlan({ unplannedEvents: 'block' }), message);
    expect(blocked).toMatchObject({ kind: 'block', reason: 'plan_unplanned_event', event: '(unplanned)' });
    expect(blocked.violations[0].outcome).toBe('blocked');
  });

  it('unplanned properties: allow keeps them, omit removes them from a copy', () => {
    const message = track({ ...good, extra: 1, other: 'x' });
    const allowed = checkPlan(orderPlan(), message);
    expect(allowed.kind === 'keep' && allowed.message).toBe(message);
    expect(allowed.violations.map((v) => [v.rule, v.path, v.outcome])).toEqual([
      ['unplanned_property', 'properties.extra', 'allowed'],
      ['unplanned_property', 'properties.other', 'allowed'],
    ]);
    const omitted = checkPlan(orderPlan({ unplannedProperties: 'omit' }), message);
    expect(omitted.kind === 'keep' && omitted.message.properties).toEqual(good);
    expect(message.properties).toHaveProperty('extra'); // the input is untouched
  });

  it('each JSON Schema keyword is a rule of its own, on its path', () => {
    const bad = {
      total: -1,
      currency: 'JPY',
      email: 'not-an-email',
      items: [{ sku: 's' }, { nope: 1 }],
      address: { city: 3, zip: 'abc' },
    };
    const out = checkPlan(orderPlan(), track(bad));
    expect(out.kind).toBe('keep');
    expect(out.violations.map((v) => [v.rule, v.path]).sort()).toEqual(
      [
        ['required:properties.orderId', 'properties.orderId'],
        ['minimum:properties.total', 'properties.total'],
        ['enum:properties.currency', 'properties.currency'],
        ['format:properties.email', 'properties.email'],
        ['required:properties.items[].sku', 'properties.items[].sku'],
        ['type:properties.address.city', 'properties.address.city'],
        ['pattern:properties.address.zip', 'properties.address.zip'],
      ].sort(),
    );
    expect(out.violations.every((v) => v.outcome === 'allowed' && v.detail.length > 0)).toBe(true);
    // Never the value: the detail says what is wrong, not what was sent.
    expect(JSON.stringify(out.violations)).not.toContain('not-an-email');
  });

  it('violations: block drops the event; omit removes the offending properties only', () => {
    const bad = { ...good, total: -1, address: { city: 'X', zip: 'abc' }, items: [{ sku: 's' }, {}] };
    expect(checkPlan(orderPlan({ violations: 'block' }), track(bad))).toMatchObject({ kind: 'block', reason: 'plan_violation' });
    const out = checkPlan(orderPlan({ violations: 'omit' }), track(bad));
    expect(out.kind === 'keep' && out.message.properties).toEqual({
      orderId: 'o1',
      currency: 'USD',
      email: 'a@b.co',
      address: { city: 'X' }, // only the bad zip
      note: [1],
      // an element of a list takes the whole list (indices would shift)
    });
    expect(out.violations.map((v) => v.outcome)).toEqual(['omitted', 'omitted', 'omitted']);
  });

  it('omit cannot omit a missing required property: the event goes on, the violation counted as allowed', () => {
    const { orderId: _gone, ...rest } = good;
    const out = checkPlan(orderPlan({ violations: 'omit' }), track(rest));
    expect(out.kind === 'keep' && out.message.properties).toEqual(rest);
    expect(out.violations).toEqual([expect.objectContaining({ rule: 'required:properties.orderId', outcome: 'allowed' })]);
  });

  it('a track event without properties is checked as {}', () => {
    const out = checkPlan(orderPlan(), { type: 'track', event: 'Order Completed', messageId: 'm' });
    expect(out.violations.map((v) => v.rule)).toEqual(['required:properties.orderId']);
  });
});

describe('checkPlan: identify and group traits, other types', () => {
  const identify = (traits: Record<string, unknown>) => ({ type: 'identify', userId: 'u', messageId: 'm', traits });

  it('unplanned traits: allow, or omit', () => {
    expect(checkPlan(orderPlan(), identify({ email: 'a@b.co', plan: 'pro' })).violations).toEqual([
      expect.objectContaining({ rule: 'unplanned_trait', path: 'traits.plan', outcome: 'allowed' }),
    ]);
    const out = checkPlan(orderPlan({ unplannedTraits: 'omit' }), identify({ email: 'a@b.co', plan: 'pro' }));
    expect(out.kind === 'keep' && out.message.traits).toEqual({ email: 'a@b.co' });
    expect(out.event).toBe('(identify)');
  });

  it('trait violations: allow, block, omit, by their own setting (not the track one)', () => {
    const bad = identify({ email: 'nope', age: 3 });
    expect(checkPlan(orderPlan({ violations: 'block' }), bad).kind).toBe('keep');
    expect(checkPlan(orderPlan({ traitViolations: 'block' }), bad)).toMatchObject({ kind: 'block', reason: 'plan_violation' });
    const out = checkPlan(orderPlan({ traitViolations: 'omit' }), bad);
    expect(out.kind === 'keep' && out.message.traits).toEqual({ age: 3 });
    expect(out.violations).toEqual([expect.objectContaining({ rule: 'format:traits.email', outcome: 'omitted' })]);
  });

  it('group without a group plan, page, screen and alias are not checked against event or trait plans', () => {
    for (const type of ['group', 'page', 'screen', 'alias']) {
      expect(
        checkPlan(orderPlan({ unplannedEvents: 'block', traitViolations: 'block' }), { type, messageId: 'm', traits: { x: 1 } }),
      ).toMatchObject({
        kind: 'keep',
        violations: [],
      });
    }
    const groupPlan = orderPlan({ unplannedTraits: 'omit' }, { group: { traits: { name: { type: 'string' } } } });
    const out = checkPlan(groupPlan, { type: 'group', groupId: 'g', messageId: 'm', traits: { name: 'Acme', size: 3 } });
    expect(out.kind === 'keep' && out.message.traits).toEqual({ name: 'Acme' });
  });
});

describe('checkPlan: the common schema', () => {
  const common = {
    type: 'object',
    required: ['userId'],
    properties: {
      userId: { type: 'string', minLength: 3 },
      context: { type: 'object', properties: { locale: { enum: ['en-US', 'de-DE'] } } },
    },
  };

  it('applies to every type, after the standard controls; allow counts, block drops', () => {
    const page = { type: 'page', messageId: 'm', anonymousId: 'a', context: { locale: 'fr-FR' } };
    const allowed = checkPlan(orderPlan({}, { common }), page);
    expect(allowed.kind).toBe('keep');
    expect(allowed.violations.map((v) => [v.rule, v.path]).sort()).toEqual([
      ['enum:common.context.locale', 'context.locale'],
      ['required:common.userId', 'userId'],
    ]);
    expect(checkPlan(orderPlan({ commonViolations: 'block' }, { common }), page)).toMatchObject({
      kind: 'block',
      reason: 'plan_common_violation',
      event: '(page)',
    });
    // The standard controls ran first: omitted properties are not seen by the common schema.
    const omitFirst = orderPlan(
      { unplannedProperties: 'omit', commonViolations: 'block' },
      { common: { properties: { properties: { maxProperties: 7 } } } },
    );
    expect(checkPlan(omitFirst, track({ ...good, extra: 1 })).kind).toBe('keep');
  });

  it('the workspace refuses a common schema that is not draft-07', () => {
    expect(() => plan({ common: { type: 'objekt' } })).toThrow(/trackingPlan\.common: invalid JSON Schema \(draft-07\)/);
    expect(() => plan({ common: { $ref: '#/definitions/missing' } })).toThrow(/trackingPlan\.common: invalid JSON Schema/);
    expect(() => plan({ enforcement: { violations: 'drop' } })).toThrow(/trackingPlan\.enforcement\.violations/);
  });
});
