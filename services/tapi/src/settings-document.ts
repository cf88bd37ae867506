import type { Source, Workspace } from '@cdp/workspace';

/**
 * The settings document analytics.js (and the mobile SDKs) load from
 * `/v1/projects/:writeKey/settings`: it points them back here, and names the source's enabled
 * destinations. The document is public (a browser fetches it with the write key), so a
 * destination appears by its name only, never with its settings; and as an entry without a
 * `type` or `bundlingStatus`, which analytics.js treats as cloud mode (it only installs device-mode
 * code, from Segment's CDN, for entries of type "browser"). `remotePlugins` stays empty for the
 * same reason.
 */
export function settingsDocument(workspace: Workspace, source: Source, writeKey: string, host: string): Record<string, unknown> {
  const integrations: Record<string, object> = {
    'Segment.io': {
      apiKey: writeKey,
      apiHost: `${host}/v1`,
      unbundledIntegrations: [],
      addBundledMetadata: true,
      maybeBundledConfigIds: {},
    },
  };
  for (const destination of workspace.destinationsForSource(source.id)) {
    if (destination.name !== 'Segment.io') integrations[destination.name] = {};
  }
  return {
    integrations,
    plan: {
      track: { __default: { enabled: true, integrations: {} } },
      identify: { __default: { enabled: true } },
      group: { __default: { enabled: true } },
    },
    edgeFunction: {},
    analyticsNextEnabled: true,
    middlewareSettings: {},
    enabledMiddleware: {},
    metrics: { sampleRate: 0 },
    legacyVideoPluginsEnabled: false,
    remotePlugins: [],
  };
}
