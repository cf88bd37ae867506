import { parseWorkspace, type Transformation } from '@cdp/workspace';
import { envelopeSchema } from '@cdp/events';
import { route } from './routing';
import { applyTransformations } from './transformations';

const message = (extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Signed Up',
  messageId: 'm1',
  userId: 'u1',
  properties: { total: 5, email: 'a@b' },
  context: { ip: '1.2.3.4', library: { name: 'x' } },
  ...extra,
});

const t = (spec: Record<string, unknown>) => spec as unknown as Transformation;

describe('applyTransformations', () => {
  it('rename_event renames only that track event', () => {
    const rename = [t({ type: 'rename_event', from: 'Signed Up', to: 'Signup Completed', enabled: true })];
    expect(applyTransformations(rename, message())).toMatchObject({ kind: 'keep', message: { event: 'Signup Completed' } });
    expect(applyTransformations(rename, message({ event: 'Other' }))).toMatchObject({ kind: 'keep', message: { event: 'Other' } });
  });

  it('rename_properties in properties (track) or traits (identify), limited to one event when given', () => {
    const rename = [t({ type: 'rename_properties', event: 'Signed Up', properties: { total: 'revenue' }, enabled: true })];
    expect(applyTransformations(rename, message())).toMatchObject({ message: { properties: { revenue: 5, email: 'a@b' } } });
    expect(applyTransformations(rename, message({ event: 'Other' }))).toMatchObject({
      message: { properties: { total: 5, email: 'a@b' } },
    });
    const traits = [t({ type: 'rename_properties', properties: { mail: 'email' }, enabled: true })];
    expect(applyTransformations(traits, { type: 'identify', messageId: 'm', traits: { mail: 'x@y' } })).toMatchObject({
      message: { traits: { email: 'x@y' } },
    });
  });

  it('drop_properties removes dotted paths from the root, on a copy', () => {
    const input = message();
    const out = applyTransformations(
      [t({ type: 'drop_properties', properties: ['context.ip', 'properties.email', 'no.such.path'], enabled: true })],
      input,
    );
    expect(out).toMatchObject({ kind: 'keep' });
    if (out.kind !== 'keep') throw new Error('dropped');
    const kept = out.message;
    expect(kept.context).toEqual({ library: { name: 'x' } });
    expect(kept.properties).toEqual({ total: 5 });
    expect(input.context.ip).toBe('1.2.3.4');
  });

  it('drop_event drops on its condition; a condition that cannot be evaluated drops too (fail closed); disabled ones do nothing', () => {
    expect(applyTransformations([t({ type: 'drop_event', if: 'event = "Signed Up"', enabled: true })], message())).toEqual({
      kind: 'drop',
      reason: 'transformation_drop',
    });
    expect(applyTransformations([t({ type: 'drop_event', if: 'event = "Heartbeat"', enabled: true })], message())).toMatchObject({
      kind: 'keep',
    });
    expect(applyTransformations([t({ type: 'drop_event', id: 'bad', if: 'nosuch(event)', enabled: true })], message())).toMatchObject({
      kind: 'drop',
      reason: 'transformation_error',
      detail: expect.stringMatching(/^bad: .*nosuch/),
    });
    expect(applyTransformations([t({ type: 'drop_event', if: 'all', enabled: false })], message())).toMatchObject({ kind: 'keep' });
  });

  it('applies in order: a later step sees what an earlier one did; code is not run and counted', () => {
    const steps = [
      t({ type: 'rename_event', from: 'Signed Up', to: 'Signup Completed', enabled: true }),
      t({ type: 'code', code: 'function (e) { return null }', enabled: true }),
      t({ type: 'drop_event', if: 'event = "Signup Completed"', enabled: true }),
    ];
    expect(applyTransformations(steps, message())).toEqual({ kind: 'drop', reason: 'transformation_drop' });
    expect(applyTransformations(steps.slice(0, 2), message())).toMatchObject({ kind: 'keep', notRun: 1 });
  });
});

describe('route with source transformations', () => {
  const ws = parseWorkspace(
    JSON.stringify({
      spaces: [{ id: 'main', name: 'Main' }],
      sources: [
        {
          id: 'web',
          name: 'Web',
          spaceId: 'main',
          writeKeys: ['wk'],
          transformations: [
            { type: 'rename_event', from: 'Signed Up', to: 'Signup Completed' },
            { type: 'drop_event', if: 'event = "Heartbeat"' },
          ],
        },
      ],
      destinations: [
        {
          id: 'signups',
          name: 'Signups',
          type: 'webhook',
          settings: { url: 'http://127.0.0.1:1/s' },
          filters: { allowEvents: ['Signup Completed'] },
        },
      ],
      connections: [{ sourceId: 'web', destinationId: 'signups' }],
    }),
    { format: 'json', file: 'transformations-test.json' },
  );
  const envelope = (event: string) =>
    envelopeSchema.parse({
      v: 1,
      sourceId: 'web',
      messageId: 'm1',
      receivedAt: '2026-12-04T12:00:00.000Z',
      message: { type: 'track', event, messageId: 'm1', userId: 'u' },
    });

  it('filters see the transformed event, and jobs carry it', () => {
    const routing = route(envelope('Signed Up'), ws);
    expect(routing.routes.map((r) => r.message.event)).toEqual(['Signup Completed']);
  });

  it('an event a transformation drops goes nowhere, with the reason', () => {
    expect(route(envelope('Heartbeat'), ws)).toEqual({
      routes: [],
      skipped: [],
      transformationsNotRun: 0,
      dropped: { reason: 'transformation_drop' },
    });
  });
});
