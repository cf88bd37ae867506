// Segment's action destinations (@segment/action-destinations, MIT) that this project runs and
// has tested end to end. Each is loaded on first use from its own module: requiring the package
// root loads all ~214 definitions (seconds of start-up, and undeclared dependencies such as
// xml-js), which a director delivering to a handful of types does not need.
import { Destination, type DestinationDefinition } from '@segment/actions-core';

/** Workspace `type` (the definition's slug) → directory under the package's dist/destinations. */
const MODULES: Readonly<Record<string, string>> = {
  'actions-webhook': 'webhook',
  'actions-amplitude': 'amplitude',
  'actions-mixpanel': 'mixpanel',
  'actions-slack': 'slack',
  'actions-hubspot-cloud': 'hubspot',
};

export const ACTION_DESTINATION_TYPES: readonly string[] = Object.keys(MODULES);

const loaded = new Map<string, DestinationDefinition<unknown>>();

/** The definition of a supported type, or undefined for an unknown one. */
export function loadDefinition(type: string): DestinationDefinition<unknown> | undefined {
  const dir = MODULES[type];
  if (dir === undefined) return undefined;
  let definition = loaded.get(type);
  if (!definition) {
    const mod = require(`@segment/action-destinations/dist/destinations/${dir}`) as { default: DestinationDefinition<unknown> };
    definition = mod.default;
    if (definition.slug !== type) throw new Error(`@segment/action-destinations: ${dir} has slug ${definition.slug}, expected ${type}`);
    loaded.set(type, definition);
  }
  return definition;
}

/** The library's Destination for a definition (settings validation, `refreshAccessToken`, actions). */
export function destinationOf(definition: DestinationDefinition<unknown>): Destination<unknown> {
  return new Destination(definition);
}
