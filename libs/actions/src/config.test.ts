import { parseWorkspace, WorkspaceConfigError } from '@cdp/workspace';
import { actionDestinationIssues, effectiveMapping } from './config';
import { catalog } from './catalog';
import { loadDefinition } from './registry';

const env = { AMP_KEY: 'k-1', AMP_SECRET: 's-1', HS_REFRESH: 'r-1', HS_SECRET: 'c-1' };

/** Loads a workspace with one destination as the director does (definitions checked); the error's details. */
function problems(destination: Record<string, unknown>): string[] {
  const text = JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [{ id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] }],
    destinations: [{ id: 'd', name: 'd', ...destination }],
  });
  try {
    parseWorkspace(text, { format: 'json', env, check: actionDestinationIssues });
    return [];
  } catch (error) {
    if (!(error instanceof WorkspaceConfigError)) throw error;
    return error.details;
  }
}

const amplitude = (subscriptions: unknown[], settings: Record<string, unknown> = {}) => ({
  type: 'actions-amplitude',
  settings: { apiKey: { $env: 'AMP_KEY' }, secretKey: { $env: 'AMP_SECRET' }, ...settings },
  subscriptions,
});
const sub = (action: string, mapping: Record<string, unknown> = {}) => ({
  id: 's',
  name: 's',
  action,
  subscribe: 'type = "track"',
  mapping,
});

describe('action destinations checked against their definitions at load', () => {
  it('accepts a valid destination with default mappings', () => {
    expect(problems(amplitude([sub('logEvent')]))).toEqual([]);
    expect(
      problems(amplitude([sub('logEvent', { user_id: { '@path': '$.traits.id' }, event_type: { '@template': '{{event}}!' } })])),
    ).toEqual([]);
  });

  it('names an unknown type, listing the available ones', () => {
    expect(problems({ type: 'actions-nope', settings: {}, subscriptions: [sub('x')] })).toEqual([
      expect.stringMatching(
        /^destinations\[0\]\.type: unknown destination type "actions-nope" \(available: webhook, actions-webhook, .*actions-amplitude/,
      ),
    ]);
  });

  it('names a missing required setting', () => {
    const details = problems({ type: 'actions-amplitude', settings: { apiKey: { $env: 'AMP_KEY' } }, subscriptions: [sub('logEvent')] });
    expect(details).toEqual(["destinations[0].settings: The root value is missing the required field 'secretKey'"]);
  });

  it('refuses a credential setting given as a literal, without echoing it', () => {
    const details = problems(amplitude([sub('logEvent')], { secretKey: 'literal-secret-value' }));
    expect(details).toEqual([expect.stringMatching(/^destinations\[0\]\.settings\.secretKey: must be a secret reference/)]);
    expect(details.join()).not.toContain('literal-secret-value');
  });

  it('names an unknown action, an unknown mapping field, a bad directive and a required field without mapping', () => {
    expect(problems(amplitude([sub('sendIt')]))).toEqual([
      expect.stringMatching(/^destinations\[0\]\.subscriptions\[0\]\.action: unknown action "sendIt" \(available: logEvent, /),
    ]);
    expect(problems(amplitude([sub('logEvent', { userid: { '@path': '$.userId' } })]))).toEqual([
      expect.stringMatching(
        /^destinations\[0\]\.subscriptions\[0\]\.mapping\.userid: unknown field of action logEvent \(fields: user_id, /,
      ),
    ]);
    expect(problems(amplitude([sub('logEvent', { user_id: { '@pth': '$.userId' } })]))).toEqual([
      'destinations[0].subscriptions[0].mapping.user_id: invalid mapping: /user_id has an invalid directive: @pth',
    ]);
    expect(problems(amplitude([sub('logEvent', { event_type: { '@template': 42 } })]))).toEqual([
      expect.stringMatching(
        /^destinations\[0\]\.subscriptions\[0\]\.mapping\.event_type: invalid mapping: \/event_type\/@template should be a string/,
      ),
    ]);
    const webhook = { type: 'actions-webhook', settings: {}, subscriptions: [sub('send', { data: { '@path': '$.' } })] };
    expect(problems(webhook)).toEqual([
      'destinations[0].subscriptions[0].mapping.url: is required by action send and has no default mapping',
    ]);
  });

  it('requires OAuth credentials as secret references for OAuth destinations', () => {
    const hubspot = (settings: Record<string, unknown>) => ({
      type: 'actions-hubspot-cloud',
      settings,
      subscriptions: [sub('upsertContact')],
    });
    expect(problems(hubspot({}))).toEqual([
      'destinations[0].settings.oauth: is required: { refreshToken, clientId, clientSecret } (OAuth destination)',
    ]);
    expect(problems(hubspot({ oauth: { refreshToken: 'plain', clientId: 'id', clientSecret: { $env: 'HS_SECRET' } } }))).toEqual([
      expect.stringMatching(/^destinations\[0\]\.settings\.oauth\.refreshToken: must be a secret reference/),
    ]);
    expect(
      problems(hubspot({ oauth: { refreshToken: { $env: 'HS_REFRESH' }, clientId: 'id', clientSecret: { $env: 'HS_SECRET' } } })),
    ).toEqual([]);
    expect(problems(amplitude([sub('logEvent')], { oauth: { clientId: 'x' } }))).toEqual([
      'destinations[0].settings.oauth: actions-amplitude does not use OAuth',
    ]);
  });

  it('runs an action with its mapping over the fields it does not map taken from their defaults', () => {
    const logEvent = loadDefinition('actions-amplitude')!.actions.logEvent;
    const mapping = effectiveMapping(logEvent, { user_id: { '@path': '$.traits.id' }, enable_batching: true });
    expect(mapping.user_id).toEqual({ '@path': '$.traits.id' });
    expect(mapping.event_type).toEqual({ '@path': '$.event' });
    expect(mapping.enable_batching).toBe(true);
  });
});

describe('catalog', () => {
  it('lists each supported type with its settings and actions from the definitions', () => {
    const entries = catalog();
    expect(entries.map((e) => e.type)).toEqual([
      'actions-webhook',
      'actions-amplitude',
      'actions-mixpanel',
      'actions-slack',
      'actions-hubspot-cloud',
    ]);
    const amp = entries.find((e) => e.type === 'actions-amplitude')!;
    expect(amp.settings.filter((s) => s.required).map((s) => s.name)).toEqual(['apiKey', 'secretKey']);
    expect(amp.deletion).toBe(true);
    const logEvent = amp.actions.find((a) => a.action === 'logEvent')!;
    expect(logEvent.fields.find((f) => f.name === 'event_type')).toMatchObject({ required: true, default: { '@path': '$.event' } });
    const mixpanel = entries.find((e) => e.type === 'actions-mixpanel')!;
    expect(mixpanel.actions.find((a) => a.action === 'trackEvent')!.batching).toBe(true);
    expect(entries.find((e) => e.type === 'actions-hubspot-cloud')!.oauth).toBe(true);
  });
});
