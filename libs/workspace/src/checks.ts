// Cross-reference checks. They read the raw document defensively, so they run even when the
// schema found other problems and the operator sees every error in one go.
import type { ConfigIssue } from './errors';
import { formatPath, type PathSegment } from './paths';

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): Obj[] {
  return Array.isArray(value) ? value.map((v) => (isObj(v) ? v : {})) : [];
}

/** Flags repeated string values of `key` in `items`, naming the first occurrence. */
function checkUnique(items: Obj[], key: string, basePath: PathSegment[], what: string, issues: ConfigIssue[]): Map<string, number> {
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const value = item[key];
    if (typeof value !== 'string') return;
    const first = seen.get(value);
    if (first === undefined) seen.set(value, index);
    else issues.push({ path: [...basePath, index, key], message: `duplicate ${what} "${value}" (also ${formatIndex(basePath, first)})` });
  });
  return seen;
}

function formatIndex(basePath: PathSegment[], index: number): string {
  return formatPath([...basePath, index]);
}

export function crossReferenceIssues(raw: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isObj(raw)) return issues;
  const spaces = list(raw.spaces);
  const sources = list(raw.sources);
  const destinations = list(raw.destinations);
  const connections = list(raw.connections);

  const spaceIds = checkUnique(spaces, 'id', ['spaces'], 'space id', issues);
  const sourceIds = checkUnique(sources, 'id', ['sources'], 'source id', issues);
  const destinationIds = checkUnique(destinations, 'id', ['destinations'], 'destination id', issues);

  const writeKeyOwner = new Map<string, string>();
  sources.forEach((source, s) => {
    if (typeof source.spaceId === 'string' && !spaceIds.has(source.spaceId)) {
      issues.push({ path: ['sources', s, 'spaceId'], message: `unknown space "${source.spaceId}"` });
    }
    // Literal keys only; keys given as references are checked once resolved.
    const keys = Array.isArray(source.writeKeys) ? source.writeKeys : [];
    keys.forEach((key, k) => {
      if (typeof key !== 'string' || key === '') return;
      const owner = writeKeyOwner.get(key);
      const self = typeof source.id === 'string' ? source.id : `sources[${s}]`;
      if (owner === undefined) writeKeyOwner.set(key, self);
      else issues.push({ path: ['sources', s, 'writeKeys', k], message: `write key already used by source "${owner}"` });
    });
    checkUnique(list(source.transformations), 'id', ['sources', s, 'transformations'], 'transformation id', issues);
    if (isObj(source.trackingPlan)) {
      checkUnique(list(source.trackingPlan.events), 'name', ['sources', s, 'trackingPlan', 'events'], 'planned event', issues);
    }
  });

  destinations.forEach((destination, d) => {
    checkUnique(list(destination.subscriptions), 'id', ['destinations', d, 'subscriptions'], 'subscription id', issues);
    if (isObj(destination.filters)) {
      checkUnique(list(destination.filters.rules), 'id', ['destinations', d, 'filters', 'rules'], 'filter rule id', issues);
    }
  });

  const pairs = new Map<string, number>();
  connections.forEach((connection, c) => {
    const { sourceId, destinationId } = connection;
    if (typeof sourceId === 'string' && !sourceIds.has(sourceId)) {
      issues.push({ path: ['connections', c, 'sourceId'], message: `unknown source "${sourceId}"` });
    }
    if (typeof destinationId === 'string' && !destinationIds.has(destinationId)) {
      issues.push({ path: ['connections', c, 'destinationId'], message: `unknown destination "${destinationId}"` });
    }
    checkUnique(list(connection.transformations), 'id', ['connections', c, 'transformations'], 'transformation id', issues);
    if (typeof sourceId === 'string' && typeof destinationId === 'string') {
      const pair = `${sourceId}\u0000${destinationId}`;
      const first = pairs.get(pair);
      if (first === undefined) pairs.set(pair, c);
      else
        issues.push({
          path: ['connections', c],
          message: `duplicate connection ${sourceId} → ${destinationId} (also connections[${first}])`,
        });
    }
  });
  return issues;
}
