// `node libs/workspace/dist/cli.js validate <file>`: checks a workspace file the way every
// service does at start (schema, cross-references, secret resolution). For CI and operators.
import { WorkspaceConfigError } from './errors';
import { loadWorkspaceFile } from './load';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = 'usage: workspace validate <file> | workspace show <file>';

/** Returns the exit code: 0 valid, 1 invalid, 2 usage error. */
export function main(argv: readonly string[], io: CliIo = { out: console.log, err: console.error }): number {
  const [command, file, ...rest] = argv;
  if ((command !== 'validate' && command !== 'show') || !file || rest.length > 0) {
    io.err(USAGE);
    return 2;
  }
  try {
    const workspace = loadWorkspaceFile(file);
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

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
