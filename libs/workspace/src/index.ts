export { WorkspaceConfigError, describeIssue, type ConfigIssue } from './errors';
export { formatPath, type PathSegment } from './paths';
export { fqlSyntaxError } from './fql';
export { SecretReference, parseSecretRef, type Resolved, type SecretRefKind, type SecretRefView } from './secret-ref';
export {
  CREDENTIAL_HEADERS,
  CREDENTIAL_SETTING,
  DEFAULT_WEBHOOK_SUBSCRIPTION_ID,
  DESTINATION_TYPE_PATTERN,
  ID_PATTERN,
  MESSAGE_TYPES,
  PROPERTY_TYPES,
  WorkspaceSchema,
  type PropertyRule,
  type PropertyType,
  type WorkspaceFileInput,
  type WorkspaceParsed,
} from './schema';
export { formatForPath, loadWorkspaceFile, parseWorkspace, type LoadOptions, type ParseOptions, type WorkspaceFormat } from './load';
export {
  Workspace,
  redactedView,
  type ActionDestination,
  type Connection,
  type Destination,
  type DestinationLimits,
  type FilterRule,
  type Filters,
  type IdentitySettings,
  type Source,
  type Space,
  type Subscription,
  type TrackingPlan,
  type Transformation,
  type WebhookDestination,
  type WorkspaceConfig,
  type WorkspaceSummary,
} from './workspace';
export {
  DEFAULT_POLL_INTERVAL_MS,
  WorkspaceStore,
  type ReloadOutcome,
  type WorkspaceStoreEvents,
  type WorkspaceStoreOptions,
} from './store';
export { main as workspaceCli, runWorkspaceCli, type CliIo } from './cli';
