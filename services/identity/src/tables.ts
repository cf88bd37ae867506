// The identity graph's DynamoDB tables: one definition, created and checked by `identity-tables`
// (the chart's hook Job, the local stack at start) and verified by the service at start.
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  waitUntilTableExists,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';

export interface TableNames {
  /** `<space>|<type:value>` → profileId. */
  ids: string;
  /** `<space>|<profileId>` → the profile record. */
  profiles: string;
}

export const tableNames = (prefix: string): TableNames => ({ ids: `${prefix}identity-ids`, profiles: `${prefix}identity-profiles` });

/** Every table has one string hash key `pk` and on-demand capacity. */
export const KEY = 'pk';

export function dynamoClient(config: { AWS_REGION: string; DYNAMODB_ENDPOINT?: string }): DynamoDBClient {
  return new DynamoDBClient({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
}

/** What is wrong with a table as described, or undefined when it is as defined. */
function tableProblem(name: string, t: TableDescription | undefined): string | undefined {
  if (!t) return `${name}: missing`;
  const key = t.KeySchema ?? [];
  if (key.length !== 1 || key[0].AttributeName !== KEY || key[0].KeyType !== 'HASH')
    return `${name}: key schema ${JSON.stringify(key)}, expected ${KEY} HASH`;
  if (t.BillingModeSummary?.BillingMode !== 'PAY_PER_REQUEST')
    return `${name}: billing mode ${t.BillingModeSummary?.BillingMode ?? 'PROVISIONED'}, expected PAY_PER_REQUEST`;
  return undefined;
}

async function describe(client: DynamoDBClient, name: string): Promise<TableDescription | undefined> {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: name }))).Table;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

/** One line per problem (missing table, wrong key or billing mode); empty when all is well. */
export async function checkTables(client: DynamoDBClient, names: TableNames): Promise<string[]> {
  const problems: string[] = [];
  for (const name of Object.values(names)) {
    const p = tableProblem(name, await describe(client, name));
    if (p) problems.push(p);
  }
  return problems;
}

/** Creates the missing tables (idempotent: a table created meanwhile by another run is fine), waits until active, then checks. */
export async function ensureTables(client: DynamoDBClient, names: TableNames): Promise<{ created: string[]; problems: string[] }> {
  const created: string[] = [];
  for (const name of Object.values(names)) {
    if (await describe(client, name)) continue;
    try {
      await client.send(
        new CreateTableCommand({
          TableName: name,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [{ AttributeName: KEY, AttributeType: 'S' }],
          KeySchema: [{ AttributeName: KEY, KeyType: 'HASH' }],
        }),
      );
      created.push(name);
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
    await waitUntilTableExists({ client, maxWaitTime: 120 }, { TableName: name });
  }
  return { created, problems: await checkTables(client, names) };
}
