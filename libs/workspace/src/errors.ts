import { formatPath, type PathSegment } from './paths';

/** One problem in a workspace file, located by its field path. */
export interface ConfigIssue {
  path: PathSegment[];
  message: string;
}

// Long lists of issues make log lines unreadable; the first ones are enough to fix the file.
const MAX_ISSUES_IN_MESSAGE = 20;

/**
 * A workspace file that cannot be used. The message names the file and every offending field
 * path, and never contains a secret value (only the reference that failed to resolve).
 */
export class WorkspaceConfigError extends Error {
  override readonly name = 'WorkspaceConfigError';

  constructor(
    /** The file (or a label such as `<inline>`) that failed. */
    readonly file: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(formatIssues(file, issues));
  }

  /** `path: message` strings, one per issue. */
  get details(): string[] {
    return this.issues.map(describeIssue);
  }
}

export function describeIssue(issue: ConfigIssue): string {
  return issue.path.length === 0 ? issue.message : `${formatPath(issue.path)}: ${issue.message}`;
}

function formatIssues(file: string, issues: readonly ConfigIssue[]): string {
  const shown = issues.slice(0, MAX_ISSUES_IN_MESSAGE).map(describeIssue);
  const more = issues.length > MAX_ISSUES_IN_MESSAGE ? `; … and ${issues.length - MAX_ISSUES_IN_MESSAGE} more` : '';
  return `workspace ${file}: ${shown.join('; ')}${more}`;
}
