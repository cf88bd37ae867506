export { ACTION_DESTINATION_TYPES, destinationOf, loadDefinition } from './registry';
export {
  OAUTH_SETTING,
  actionDestinationIssues,
  actionDestinationProblems,
  definitionSettings,
  effectiveMapping,
  mappingProblems,
  usesOAuth,
  type OAuthSettings,
} from './config';
export { catalog, catalogEntry, type CatalogAction, type CatalogEntry, type CatalogField } from './catalog';
export { ActionDestinationRunner, TokenStore, outcomeOfError, type ActionOutcome, type RunnerOptions } from './runner';
