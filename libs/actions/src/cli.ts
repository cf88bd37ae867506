// `node libs/actions/dist/cli.js validate <file>`: the workspace CLI (libs/workspace) with action
// destinations also checked against their definitions (settings, actions, mappings), as the
// director checks them at load. `show` prints the effective config, secrets as references.
import { runWorkspaceCli } from '@cdp/workspace';
import { actionDestinationIssues } from './config';

if (require.main === module) runWorkspaceCli(process.argv.slice(2), actionDestinationIssues);
