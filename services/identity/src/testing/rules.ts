import { WorkspaceSchema, type IdentitySettings } from '@cdp/workspace';
import { compileRules, type IdentityRules } from '../ids';

/** A space's identity settings as the workspace file gives them (Segment's defaults unless overridden). */
export function identitySettings(identity: Record<string, unknown> = {}): IdentitySettings {
  return WorkspaceSchema.parse({ spaces: [{ id: 'space', name: 'Space', identity }] }).spaces[0].identity as IdentitySettings;
}

export const testRules = (identity: Record<string, unknown> = {}): IdentityRules => compileRules(identitySettings(identity));
