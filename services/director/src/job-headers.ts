import { FORBIDDEN_JOB_HEADERS } from '@cdp/director-rpc';

const FORBIDDEN = new Set(FORBIDDEN_JOB_HEADERS);
const PATTERN = /^[!#$%&'+.^_`|~0-9a-z-]+\*?$/;

/** Why an allow-list entry is unusable, or undefined when it is fine. */
export function allowListProblem(entry: string): string | undefined {
  if (!PATTERN.test(entry)) return `"${entry}" is not a lower-case header name or a prefix ending in *`;
  if (FORBIDDEN.has(entry)) return `"${entry}" can never be set by a job`;
  return undefined;
}

/**
 * The headers a job may set (DESIGN.md "Director RPC": an allow-list): exact lower-case names or
 * prefixes ending in `*`, never one of FORBIDDEN_JOB_HEADERS. Names are compared lower-cased.
 */
export class JobHeaderPolicy {
  private readonly names: Set<string>;
  private readonly prefixes: string[];

  constructor(allowed: readonly string[]) {
    for (const entry of allowed) {
      const problem = allowListProblem(entry);
      if (problem) throw new Error(`header allow-list: ${problem}`);
    }
    this.names = new Set(allowed.filter((e) => !e.endsWith('*')));
    this.prefixes = allowed.filter((e) => e.endsWith('*')).map((e) => e.slice(0, -1));
  }

  allows(name: string): boolean {
    const lower = name.toLowerCase();
    if (FORBIDDEN.has(lower)) return false;
    return this.names.has(lower) || this.prefixes.some((p) => lower.startsWith(p));
  }

  /**
   * The job's headers with lower-cased names (the driver merges them with its own lower-case
   * ones), or the reason the job is rejected: a header outside the list, or one name twice.
   */
  check(headers: Record<string, string>): { headers: Record<string, string> } | { error: string } {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      if (!this.allows(lower)) return { error: `header_not_allowed: ${lower}` };
      if (Object.hasOwn(out, lower)) return { error: `duplicate_header: ${lower}` };
      out[lower] = value;
    }
    return { headers: out };
  }
}
