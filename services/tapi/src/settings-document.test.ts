import { parseWorkspace } from '@cdp/workspace';
import { settingsDocument } from './settings-document';

const env = { AMP_KEY: 'amp-key-value-123', AMP_SECRET: 'amp-secret-value-456', HOOK_HMAC: 'hook-hmac-value-789' };

const workspace = parseWorkspace(
  JSON.stringify({
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [
      { id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk_web'] },
      { id: 'app', name: 'App', spaceId: 'main', writeKeys: ['wk_app'] },
    ],
    destinations: [
      {
        id: 'amp',
        name: 'Amplitude',
        type: 'actions-amplitude',
        settings: { apiKey: { $env: 'AMP_KEY' }, secretKey: { $env: 'AMP_SECRET' } },
        subscriptions: [{ id: 's', name: 's', action: 'logEvent', subscribe: 'type = "track"' }],
      },
      { id: 'hook', name: 'My webhook', type: 'webhook', settings: { url: 'https://example.com/hook', hmacSecret: { $env: 'HOOK_HMAC' } } },
      { id: 'off', name: 'Disabled one', type: 'webhook', enabled: false, settings: { url: 'https://example.com/off' } },
      { id: 'cut', name: 'Connection off', type: 'webhook', settings: { url: 'https://example.com/cut' } },
      { id: 'other', name: 'Other source only', type: 'webhook', settings: { url: 'https://example.com/other' } },
    ],
    connections: [
      { sourceId: 'web', destinationId: 'amp' },
      { sourceId: 'web', destinationId: 'hook' },
      { sourceId: 'web', destinationId: 'off' },
      { sourceId: 'web', destinationId: 'cut', enabled: false },
      { sourceId: 'app', destinationId: 'other' },
    ],
  }),
  { format: 'json', env },
);

describe('settings document', () => {
  const doc = settingsDocument(workspace, workspace.source('web')!, 'wk_web', 'cdp.example.com');

  it("names the source's enabled destinations only, without their settings", () => {
    const integrations = doc.integrations as Record<string, unknown>;
    expect(Object.keys(integrations).sort()).toEqual(['Amplitude', 'My webhook', 'Segment.io']);
    expect(integrations.Amplitude).toEqual({});
    expect(integrations['My webhook']).toEqual({});
    expect(integrations['Segment.io']).toMatchObject({ apiKey: 'wk_web', apiHost: 'cdp.example.com/v1' });
    const text = JSON.stringify(doc);
    for (const secret of Object.values(env)) expect(text).not.toContain(secret);
    expect(text).not.toContain('example.com/hook');
  });

  it('gives analytics.js nothing to load from a CDN: no browser-type entries, no remote plugins', () => {
    for (const [name, entry] of Object.entries(doc.integrations as Record<string, Record<string, unknown>>)) {
      if (name === 'Segment.io') continue;
      expect(entry.type).toBeUndefined();
      expect(entry.bundlingStatus).toBeUndefined();
      expect(entry.versionSettings).toBeUndefined();
    }
    expect(doc.remotePlugins).toEqual([]);
  });
});
