import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve as resolvePath } from 'node:path';
import { registerSecret } from '@cdp/log';
import { LineCounter, parseDocument } from 'yaml';
import type { core } from 'zod';
import { crossReferenceIssues } from './checks';
import { type ConfigIssue, WorkspaceConfigError } from './errors';
import type { PathSegment } from './paths';
import { issueMessages, WorkspaceSchema, writeKeyProblem, type WorkspaceParsed } from './schema';
import { SecretReference } from './secret-ref';
import { Workspace, type SecretEntry, type WorkspaceConfig } from './workspace';

export type WorkspaceFormat = 'yaml' | 'json';

export interface LoadOptions {
  /** Where `$env` references are read; `process.env` by default. */
  env?: NodeJS.ProcessEnv;
  /** Directory that relative `$file` paths are resolved against; the workspace file's own directory by default. */
  baseDir?: string;
  /**
   * Extra checks of a valid, resolved config, e.g. action destinations against their
   * definitions (@cdp/actions `actionDestinationIssues`, which the director and the CLI pass).
   * Their issues make the load fail like the schema's.
   */
  check?: (config: WorkspaceConfig) => ConfigIssue[];
}

export interface ParseOptions extends LoadOptions {
  format: WorkspaceFormat;
  /** Names the document in error messages; `<inline>` by default. */
  file?: string;
}

export function formatForPath(file: string): WorkspaceFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  throw new WorkspaceConfigError(file, [{ path: [], message: `unsupported file extension "${ext}" (use .yaml, .yml or .json)` }]);
}

/** Reads, validates and resolves a workspace file. Throws WorkspaceConfigError naming each offending field. */
export function loadWorkspaceFile(file: string, options: LoadOptions = {}): Workspace {
  const format = formatForPath(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new WorkspaceConfigError(file, [{ path: [], message: `cannot read file (${errorCode(error)})` }]);
  }
  return parseWorkspace(text, { ...options, format, file, baseDir: options.baseDir ?? dirname(resolvePath(file)) });
}

/** Validates and resolves workspace text already in memory. */
export function parseWorkspace(text: string, options: ParseOptions): Workspace {
  const file = options.file ?? '<inline>';
  const raw = parseText(text, options.format, file);
  const issues: ConfigIssue[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    issues.push({ path: [], message: raw === null || raw === undefined ? 'the file is empty' : 'the top level must be a mapping' });
    throw new WorkspaceConfigError(file, issues);
  }
  const result = WorkspaceSchema.safeParse(raw, { error: issueMessages });
  if (!result.success) issues.push(...zodIssues(result.error.issues));
  issues.push(...crossReferenceIssues(raw));
  if (issues.length > 0 || !result.success) throw new WorkspaceConfigError(file, issues);

  const resolution = resolveSecrets(result.data, {
    env: options.env ?? process.env,
    baseDir: options.baseDir ?? process.cwd(),
  });
  issues.push(...resolution.issues, ...resolvedWriteKeyIssues(resolution.config));
  if (issues.length > 0) throw new WorkspaceConfigError(file, issues);
  if (options.check) {
    issues.push(...options.check(resolution.config));
    if (issues.length > 0) throw new WorkspaceConfigError(file, issues);
  }

  return new Workspace({
    config: resolution.config,
    secrets: resolution.secrets,
    version: hash(text).slice(0, 16),
    fingerprint: fingerprint(text, resolution.secretFiles),
    secretFiles: [...resolution.secretFiles.keys()],
    file,
  });
}

// ---------------------------------------------------------------------------------------------
// Parsing

function parseText(text: string, format: WorkspaceFormat, file: string): unknown {
  if (format === 'json') {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new WorkspaceConfigError(file, [{ path: [], message: `invalid JSON: ${jsonErrorMessage(error, text)}` }]);
    }
  }
  // Parser messages are used without their source excerpt: a broken line could hold a value
  // that must not reach logs.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new WorkspaceConfigError(
      file,
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: [], message: `invalid YAML at line ${line}, column ${col}: ${e.message}` };
      }),
    );
  }
  return doc.toJS({ maxAliasCount: 100 });
}

function jsonErrorMessage(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  // V8 quotes part of the input (`Unexpected token 'x', ..."{...}"... is not valid JSON`); drop it.
  const cleaned = message.replace(/, .*is not valid JSON$/s, '');
  const position = /at position (\d+)/.exec(cleaned);
  if (!position) return cleaned;
  const offset = Number(position[1]);
  const before = text.slice(0, offset).split('\n');
  return `${cleaned.replace(/ at position \d+.*$/s, '')} at line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

/** zod issues → ConfigIssues; unknown keys become one issue per key so the path names the typo. */
function zodIssues(issues: readonly core.$ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...path, key], message: 'unknown field' });
    } else {
      out.push({ path, message: issue.message });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Secret resolution

interface ResolveContext {
  env: NodeJS.ProcessEnv;
  baseDir: string;
}

interface Resolution {
  config: WorkspaceConfig;
  secrets: SecretEntry[];
  /** Absolute path → content of every `$file` read, for change detection. */
  secretFiles: Map<string, string | undefined>;
  issues: ConfigIssue[];
}

function resolveSecrets(parsed: WorkspaceParsed, ctx: ResolveContext): Resolution {
  const secrets: SecretEntry[] = [];
  const secretFiles = new Map<string, string | undefined>();
  const issues: ConfigIssue[] = [];

  const resolveRef = (ref: SecretReference, path: PathSegment[]): string => {
    let value: string | undefined;
    if (ref.kind === '$env') {
      value = ctx.env[ref.ref];
      if (value === undefined) issues.push({ path, message: `environment variable ${ref.ref} is not set ($env)` });
      else if (value === '') issues.push({ path, message: `environment variable ${ref.ref} is empty ($env)` });
    } else {
      const file = resolvePath(ctx.baseDir, ref.ref);
      try {
        // One trailing newline is what `echo`/editors add; anything else is part of the secret.
        value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        secretFiles.set(file, value);
        if (value === '') issues.push({ path, message: `secret file ${file} is empty ($file)` });
      } catch (error) {
        secretFiles.set(file, undefined);
        issues.push({ path, message: `cannot read secret file ${file} ($file): ${errorCode(error)}` });
      }
    }
    if (!value) return '';
    registerSecret(value);
    secrets.push({ path, ref, value });
    return value;
  };

  const walk = (value: unknown, path: PathSegment[]): unknown => {
    if (value instanceof SecretReference) return resolveRef(value, path);
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, i]));
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = walk(item, [...path, key]);
      return out;
    }
    return value;
  };

  const config = walk(parsed, []) as WorkspaceConfig;
  return { config, secrets, secretFiles, issues };
}

/**
 * Write keys given as references are only known now; check them like literal ones, without
 * echoing them. (Literal duplicates were already refused by the cross-reference pass.)
 */
function resolvedWriteKeyIssues(config: WorkspaceConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const owner = new Map<string, string>();
  config.sources.forEach((source, s) => {
    source.writeKeys.forEach((key, k) => {
      if (key === '') return; // unresolved; already reported
      const path = ['sources', s, 'writeKeys', k];
      const problem = writeKeyProblem(key);
      const first = owner.get(key);
      if (problem) issues.push({ path, message: problem });
      else if (first !== undefined) issues.push({ path, message: `write key already used by source "${first}"` });
      else owner.set(key, source.id);
    });
  });
  return issues;
}

// ---------------------------------------------------------------------------------------------

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * Identifies everything a Workspace was built from: the file and the `$file` secrets it read
 * (by hash). Used by WorkspaceStore to notice a rotated mounted Secret as well as a new file.
 */
export function fingerprint(text: string, secretFiles: ReadonlyMap<string, string | undefined>): string {
  const h = createHash('sha256').update(text);
  for (const [file, content] of [...secretFiles.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    h.update(`\u0000${file}\u0000${content === undefined ? '-' : hash(content)}`);
  }
  return h.digest('hex');
}

export function errorCode(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.message : String(error);
}
