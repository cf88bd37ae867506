// An action destination's workspace config checked against its Segment definition: settings
// by the definition's own schema, each subscription's action and mapping (directives, field
// names, required fields), OAuth credentials where the definition refreshes tokens.
import { transform, type ActionDefinition, type DestinationDefinition, type InputField } from '@segment/actions-core';
import type { ConfigIssue, Destination, PathSegment, WorkspaceConfig } from '@cdp/workspace';
import { ACTION_DESTINATION_TYPES, destinationOf, loadDefinition } from './registry';

/** Mapping keys the library reads although no action declares them (batching and sync hints). */
const RESERVED_MAPPING_KEYS = new Set([
  'enable_batching',
  'batch_size',
  'batch_keys',
  '__segment_internal_sync_mode',
  '__segment_internal_matching_key',
]);

/** The workspace setting holding OAuth credentials (not a setting of the definition). */
export const OAUTH_SETTING = 'oauth';

/** OAuth credentials of a destination whose definition refreshes access tokens. */
export interface OAuthSettings {
  accessToken?: string;
  refreshToken: string;
  clientId: string;
  clientSecret: string;
  refreshTokenUrl?: string;
}

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function usesOAuth(definition: DestinationDefinition<unknown>): boolean {
  const scheme = definition.authentication?.scheme;
  return scheme === 'oauth2' || scheme === 'oauth-managed';
}

/** The definition's settings: the workspace settings less `oauth`. */
export function definitionSettings(settings: Obj): Obj {
  const { [OAUTH_SETTING]: _oauth, ...rest } = settings;
  return rest;
}

/**
 * The mapping an action runs with: the subscription's mapping, and each field it does not map
 * taken from the field's `default` in the definition (Segment's default mappings).
 */
export function effectiveMapping(action: ActionDefinition<unknown>, mapping: Obj): Obj {
  const out: Obj = {};
  for (const [key, field] of Object.entries(action.fields as Record<string, InputField>)) {
    if (key in mapping) out[key] = mapping[key];
    else if (field.default !== undefined) out[key] = field.default;
  }
  for (const key of Object.keys(mapping)) if (RESERVED_MAPPING_KEYS.has(key)) out[key] = mapping[key];
  return out;
}

/** AggregateAjvError's entries (`pointer` like `/apiKey`) as issues under `base`. */
function ajvIssues(error: unknown, base: PathSegment[]): ConfigIssue[] {
  const errors = (error as { errors?: Array<{ pointer?: string; message?: string }> }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return [{ path: base, message: (error as Error).message }];
  return errors.map((e) => ({
    path: [...base, ...(e.pointer ?? '').split('/').filter(Boolean)],
    message: (e.message ?? 'is invalid').replace(/\.$/, ''),
  }));
}

/** Problems of one action destination, paths relative to the destination. */
export function actionDestinationProblems(destination: Destination): ConfigIssue[] {
  const definition = loadDefinition(destination.type);
  if (!definition) {
    return [
      {
        path: ['type'],
        message: `unknown destination type "${destination.type}" (available: webhook, ${ACTION_DESTINATION_TYPES.join(', ')})`,
      },
    ];
  }
  const issues: ConfigIssue[] = [];
  const settings = destination.settings as Obj;
  try {
    destinationOf(definition).validateSettings(definitionSettings(settings));
  } catch (error) {
    issues.push(...ajvIssues(error, ['settings']));
  }
  const oauth = settings[OAUTH_SETTING];
  if (usesOAuth(definition)) {
    if (!isObj(oauth)) {
      issues.push({
        path: ['settings', OAUTH_SETTING],
        message: 'is required: { refreshToken, clientId, clientSecret } (OAuth destination)',
      });
    } else {
      for (const key of ['refreshToken', 'clientId', 'clientSecret'])
        if (typeof oauth[key] !== 'string' || oauth[key] === '')
          issues.push({ path: ['settings', OAUTH_SETTING, key], message: 'is required (OAuth destination)' });
    }
  } else if (oauth !== undefined) {
    issues.push({ path: ['settings', OAUTH_SETTING], message: `${destination.type} does not use OAuth` });
  }
  destination.subscriptions.forEach((subscription, i) => {
    const base: PathSegment[] = ['subscriptions', i];
    const slug = subscription.action ?? '';
    const action = definition.actions[slug];
    if (!action) {
      issues.push({
        path: [...base, 'action'],
        message: `unknown action "${slug}" (available: ${Object.keys(definition.actions).join(', ')})`,
      });
      return;
    }
    issues.push(
      ...mappingProblems(slug, action, subscription.mapping as Obj).map((p) => ({ ...p, path: [...base, 'mapping', ...p.path] })),
    );
  });
  return issues;
}

/** The messages of the mapping kit's error (an AggregateError of several, whose own message holds their stacks). */
function mappingErrorMessages(error: unknown): string[] {
  const e = error as { errors?: unknown; [Symbol.iterator]?: unknown } | null;
  const inner = Array.isArray(e?.errors)
    ? e.errors
    : typeof e?.[Symbol.iterator] === 'function'
      ? [...(error as Iterable<unknown>)]
      : [error];
  return inner.map((x) => (x instanceof Error ? x.message : String(x)).replace(/\s+/g, ' ').replace(/\.$/, ''));
}

/** A mapping's problems, paths relative to the mapping. */
export function mappingProblems(slug: string, action: ActionDefinition<unknown>, mapping: Obj): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const fields = action.fields as Record<string, InputField>;
  for (const key of Object.keys(mapping)) {
    if (!(key in fields) && !RESERVED_MAPPING_KEYS.has(key)) {
      issues.push({ path: [key], message: `unknown field of action ${slug} (fields: ${Object.keys(fields).join(', ')})` });
    }
  }
  for (const [key, field] of Object.entries(fields)) {
    if (field.required === true && !(key in mapping) && field.default === undefined) {
      issues.push({ path: [key], message: `is required by action ${slug} and has no default mapping` });
    }
  }
  for (const [key, value] of Object.entries(mapping)) {
    try {
      // The mapping kit validates directives (@path, @template, @if, ...) before resolving them.
      transform({ [key]: value } as never, {});
    } catch (error) {
      issues.push({ path: [key], message: `invalid mapping: ${mappingErrorMessages(error).join('; ')}` });
    }
  }
  return issues;
}

/** Every enabled-or-not action destination of a workspace checked against its definition (LoadOptions.check). */
export function actionDestinationIssues(config: WorkspaceConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  config.destinations.forEach((destination, i) => {
    if (destination.kind !== 'action') return;
    for (const issue of actionDestinationProblems(destination)) issues.push({ ...issue, path: ['destinations', i, ...issue.path] });
  });
  return issues;
}
