import { REDACTED } from '@cdp/log';
import { formatPath, type PathSegment } from './paths';
import type { ActionDestinationParsed, DestinationParsed, WebhookDestinationParsed, WorkspaceParsed } from './schema';
import type { Resolved, SecretReference, SecretRefView } from './secret-ref';

/** The effective configuration: defaults applied, secret references replaced by their values. */
export type WorkspaceConfig = Resolved<WorkspaceParsed>;
export type Space = WorkspaceConfig['spaces'][number];
export type IdentitySettings = Space['identity'];
export type Source = WorkspaceConfig['sources'][number];
export type TrackingPlan = NonNullable<Source['trackingPlan']>;
export type Transformation = Source['transformations'][number];
export type Destination = Resolved<DestinationParsed>;
export type WebhookDestination = Resolved<WebhookDestinationParsed>;
export type ActionDestination = Resolved<ActionDestinationParsed>;
export type Subscription = Destination['subscriptions'][number];
export type Filters = Destination['filters'];
export type FilterRule = Filters['rules'][number];
export type DestinationLimits = Destination['limits'];
export type Connection = WorkspaceConfig['connections'][number];

/** Where a secret was resolved, from which reference. The value never leaves this module's views. */
export interface SecretEntry {
  path: PathSegment[];
  ref: SecretReference;
  value: string;
}

export interface WorkspaceSummary {
  spaces: number;
  sources: number;
  writeKeys: number;
  destinations: number;
  enabledDestinations: number;
  connections: number;
  secretReferences: number;
}

interface SecretMeta {
  entries: readonly SecretEntry[];
}

// Side map config object → its secrets, so `redactedView(config)` works on the bare config
// without the secrets ever being stored inside it.
const secretsByConfig = new WeakMap<object, SecretMeta>();

export interface WorkspaceInit {
  config: WorkspaceConfig;
  secrets: SecretEntry[];
  version: string;
  fingerprint: string;
  secretFiles: string[];
  file: string;
  loadedAt?: Date;
}

/** One validated, resolved, immutable version of the workspace configuration, with lookups. */
export class Workspace {
  /** Deep-frozen: services share one instance, and a mutation would be a bug. */
  readonly config: WorkspaceConfig;
  /** Hash of the workspace file's content (16 hex chars). */
  readonly version: string;
  readonly loadedAt: Date;
  readonly file: string;
  /** Path (`destinations[0].settings.hmacSecret`) → the reference it was resolved from. */
  readonly secretPaths: ReadonlyMap<string, SecretRefView>;
  /** Absolute paths of the `$file` secrets this version read. */
  readonly secretFiles: readonly string[];
  /** Identifies the file and the `$file` secrets as read (internal: WorkspaceStore change detection). */
  readonly fingerprint: string;

  private readonly spacesById = new Map<string, Space>();
  private readonly sourcesById = new Map<string, Source>();
  private readonly sourcesByWriteKey = new Map<string, Source>();
  private readonly destinationsById = new Map<string, Destination>();
  private readonly connectionsBySource = new Map<string, Connection[]>();
  private readonly deliveryTargets = new Map<string, Destination[]>();

  constructor(init: WorkspaceInit) {
    this.config = deepFreeze(init.config);
    this.version = init.version;
    this.fingerprint = init.fingerprint;
    this.secretFiles = Object.freeze([...init.secretFiles]);
    this.file = init.file;
    this.loadedAt = init.loadedAt ?? new Date();
    secretsByConfig.set(this.config, { entries: Object.freeze([...init.secrets]) });
    this.secretPaths = new Map(init.secrets.map((s) => [formatPath(s.path), s.ref.toJSON() as SecretRefView]));

    for (const space of this.config.spaces) this.spacesById.set(space.id, space);
    for (const source of this.config.sources) {
      this.sourcesById.set(source.id, source);
      for (const key of source.writeKeys) this.sourcesByWriteKey.set(key, source);
    }
    for (const destination of this.config.destinations) this.destinationsById.set(destination.id, destination);
    for (const connection of this.config.connections) {
      const list = this.connectionsBySource.get(connection.sourceId) ?? [];
      list.push(connection);
      this.connectionsBySource.set(connection.sourceId, list);
      const destination = this.destinationsById.get(connection.destinationId);
      if (connection.enabled && destination?.enabled) {
        const targets = this.deliveryTargets.get(connection.sourceId) ?? [];
        targets.push(destination);
        this.deliveryTargets.set(connection.sourceId, targets);
      }
    }
  }

  space(id: string): Space | undefined {
    return this.spacesById.get(id);
  }

  source(id: string): Source | undefined {
    return this.sourcesById.get(id);
  }

  /** The source owning a write key, enabled or not (callers decide what a disabled source means). */
  sourceByWriteKey(writeKey: string): Source | undefined {
    return this.sourcesByWriteKey.get(writeKey);
  }

  destination(id: string): Destination | undefined {
    return this.destinationsById.get(id);
  }

  /** Every connection of a source, enabled or not. */
  connectionsForSource(sourceId: string): readonly Connection[] {
    return this.connectionsBySource.get(sourceId) ?? [];
  }

  connection(sourceId: string, destinationId: string): Connection | undefined {
    return this.connectionsForSource(sourceId).find((c) => c.destinationId === destinationId);
  }

  /** Where a source's events go: destinations that are enabled, through enabled connections. */
  destinationsForSource(sourceId: string): readonly Destination[] {
    return this.deliveryTargets.get(sourceId) ?? [];
  }

  sourcesInSpace(spaceId: string): Source[] {
    return this.config.sources.filter((s) => s.spaceId === spaceId);
  }

  /** The effective config for admin views: secrets shown as their references, never as values. */
  redactedView(): unknown {
    return redactedView(this.config);
  }

  summary(): WorkspaceSummary {
    const c = this.config;
    return {
      spaces: c.spaces.length,
      sources: c.sources.length,
      writeKeys: c.sources.reduce((n, s) => n + s.writeKeys.length, 0),
      destinations: c.destinations.length,
      enabledDestinations: c.destinations.filter((d) => d.enabled).length,
      connections: c.connections.length,
      secretReferences: this.secretPaths.size,
    };
  }
}

// Shorter values would mask unrelated text; the logger applies the same floor.
const MIN_SECRET_LENGTH = 4;

/**
 * A JSON copy of a workspace config with every resolved secret replaced by its reference
 * (`{ "$env": "NAME" }`), and any other string containing a secret value replaced by
 * `[REDACTED]`. Throws for a config the loader did not produce, rather than risk showing secrets.
 */
export function redactedView(target: Workspace | WorkspaceConfig): unknown {
  const config = target instanceof Workspace ? target.config : target;
  const meta = secretsByConfig.get(config);
  if (!meta) throw new Error('redactedView: this config was not produced by the workspace loader');
  const copy = JSON.parse(JSON.stringify(config)) as unknown;
  for (const entry of meta.entries) setAt(copy, entry.path, entry.ref.toJSON());
  const values = meta.entries.map((e) => e.value).filter((v) => v.length >= MIN_SECRET_LENGTH);
  return values.length > 0 ? maskValues(copy, values) : copy;
}

function setAt(root: unknown, path: readonly PathSegment[], value: unknown): void {
  if (path.length === 0) return;
  let node = root as Record<PathSegment, unknown>;
  for (const segment of path.slice(0, -1)) {
    node = node[segment] as Record<PathSegment, unknown>;
    if (typeof node !== 'object' || node === null) return;
  }
  node[path[path.length - 1]] = value;
}

// Defence in depth: a secret value copied into a non-secret field (a mapping, a URL) is masked too.
function maskValues(value: unknown, secrets: readonly string[]): unknown {
  if (typeof value === 'string') return secrets.some((s) => value.includes(s)) ? REDACTED : value;
  if (Array.isArray(value)) return value.map((v) => maskValues(v, secrets));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskValues(v, secrets);
    return out;
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
