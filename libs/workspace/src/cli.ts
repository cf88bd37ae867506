// `node libs/workspace/dist/cli.js validate <file>`: checks a workspace file the way every
// service does at start (schema, cross-references, secret resolution). For CI and operators.
import { WorkspaceConfigError } from './errors';
import { loadWorkspaceFile, type LoadOptions } from './load';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = 'usage: workspace validate <file> | workspace show <file>';

/**
 * Returns the exit code: 0 valid, 1 invalid, 2 usage error. `check` adds checks (the action
 * destinations' definitions: `node libs/actions/dist/cli.js` passes them).
 */
export function main(argv: readonly string[], io: CliIo = { out: console.log, err: console.error }, check?: LoadOptions['check']): number {
  const [command, file, ...rest] = argv;
  if ((command !== 'validate' && command !== 'show') || !file || rest.length > 0) {
    io.err(USAGE);
    return 2;
  }
  try {
    const workspace = loadWorkspaceFile(file, { check });
    if (command === 'show') {
      // The effective config with defaults applied; secrets appear only as their references.
      io.out(JSON.stringify(workspace.redactedView(), null, 2));
      return 0;
    }
    const s = workspace.summary();
    io.out(
      `OK ${file} (version ${workspace.version}): ${plural(s.spaces, 'space')}, ${plural(s.sources, 'source')} ` +
        `(${plural(s.writeKeys, 'write key')}), ${plural(s.destinations, 'destination')} (${s.enabledDestinations} enabled), ` +
        `${plural(s.connections, 'connection')}, ${plural(s.secretReferences, 'secret reference')}`,
    );
    return 0;
  } catch (error) {
    if (!(error instanceof WorkspaceConfigError)) throw error;
    io.err(`INVALID ${error.message}`);
    return 1;
  }
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Runs `main` for a process: its exit code, or 1 with the message of an unexpected error. */
export function runWorkspaceCli(argv: readonly string[], check?: LoadOptions['check']): void {
  try {
    process.exitCode = main(argv, undefined, check);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}

if (require.main === module) runWorkspaceCli(process.argv.slice(2));
