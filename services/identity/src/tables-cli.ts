#!/usr/bin/env node
// identity-tables: creates (`create`, idempotent) or checks (`check`, changes nothing) the identity
// graph's DynamoDB tables. The chart runs it as a hook Job, the local stack at start.
import { loadConfig, z } from '@cdp/config';
import { err, out, runCli, UsageError } from '@cdp/kafka';
import { identityTablesEnv } from './config';
import { checkTables, dynamoClient, ensureTables, tableNames } from './tables';

const USAGE = `usage: identity-tables create|check
env: AWS_REGION (required), DYNAMODB_ENDPOINT (AWS's endpoint when unset), IDENTITY_TABLE_PREFIX (cdp-),
     AWS credentials as the AWS SDK reads them (env, web identity, instance role)`;

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const command = argv[0];
  if (command !== 'create' && command !== 'check') throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}`);
  const config = loadConfig(z.object(identityTablesEnv), env);
  const names = tableNames(config.IDENTITY_TABLE_PREFIX);
  const client = dynamoClient(config);
  try {
    let problems: string[];
    if (command === 'create') {
      const result = await ensureTables(client, names);
      for (const name of result.created) out(`created ${name}`);
      problems = result.problems;
    } else {
      problems = await checkTables(client, names);
    }
    for (const problem of problems) err(problem);
    if (problems.length > 0) return 1;
    out(`${Object.values(names).length} tables match (${Object.values(names).join(', ')})`);
    return 0;
  } finally {
    client.destroy();
  }
}

if (require.main === module) runCli('identity-tables', USAGE, () => main(process.argv.slice(2), process.env));
