// The catalog of action destinations: what a workspace may configure, from the definitions.
import type { DestinationDefinition, GlobalSetting, InputField } from '@segment/actions-core';
import { ACTION_DESTINATION_TYPES, loadDefinition } from './registry';
import { usesOAuth } from './config';

export interface CatalogField {
  name: string;
  label: string;
  description?: string;
  type: string;
  required: boolean;
  multiple?: boolean;
  choices?: unknown;
  /** The default mapping (actions) or value (settings). */
  default?: unknown;
}

export interface CatalogAction {
  action: string;
  title: string;
  description?: string;
  /** Segment's suggested trigger (FQL). */
  defaultSubscription?: string;
  /** True when it has performBatch (enable with `enable_batching: true` in the mapping). */
  batching: boolean;
  fields: CatalogField[];
}

export interface CatalogEntry {
  type: string;
  name: string;
  description?: string;
  authentication: string;
  /** True when settings need `oauth: { refreshToken, clientId, clientSecret }`. */
  oauth: boolean;
  /** True when the definition forwards deletions (onDelete). */
  deletion: boolean;
  settings: CatalogField[];
  actions: CatalogAction[];
}

function field(name: string, f: InputField | GlobalSetting): CatalogField {
  const out: CatalogField = { name, label: f.label, type: f.type, required: f.required === true };
  if (f.description) out.description = f.description;
  if (f.multiple) out.multiple = true;
  if (f.choices) out.choices = f.choices;
  if (f.default !== undefined) out.default = f.default;
  return out;
}

export function catalogEntry(type: string, definition: DestinationDefinition<unknown>): CatalogEntry {
  return {
    type,
    name: definition.name,
    description: definition.description,
    authentication: definition.authentication?.scheme ?? 'none',
    oauth: usesOAuth(definition),
    deletion: typeof definition.onDelete === 'function',
    settings: Object.entries(definition.authentication?.fields ?? {}).map(([name, f]) => field(name, f)),
    actions: Object.entries(definition.actions).map(([action, a]) => ({
      action,
      title: a.title,
      description: a.description,
      defaultSubscription: a.defaultSubscription,
      batching: typeof a.performBatch === 'function',
      fields: Object.entries(a.fields as Record<string, InputField>).map(([name, f]) => field(name, f)),
    })),
  };
}

/** Every supported action destination (loads each definition once). */
export function catalog(): CatalogEntry[] {
  return ACTION_DESTINATION_TYPES.map((type) => catalogEntry(type, loadDefinition(type)!));
}
