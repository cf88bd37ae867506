// The identity graph's DynamoDB tables: one definition, created and checked by `identity-tables`
// (the chart's hook Job, the local stack at start) and verified by the service at start.
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type KeySchemaElement,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';

export interface TableNames {
  /** `<space>|<type:value>` → profileId. */
  ids: string;
  /** `<space>|<profileId>` → the profile record. */
  profiles: string;
  /** `<space>|<profileId>` + slot → one recent event of the profile (a ring of slots, expiring by TTL). */
  events: string;
  /** regulationId → a regulation created through the Regulations API. */
  regulations: string;
}

export const tableNames = (prefix: string): TableNames => ({
  ids: `${prefix}identity-ids`,
  profiles: `${prefix}identity-profiles`,
  events: `${prefix}identity-events`,
  regulations: `${prefix}identity-regulations`,
});

/** Every table has a string hash key `pk` and on-demand capacity. */
export const KEY = 'pk';
/** The events table's numeric range key: the event's slot in its profile's ring. */
export const SORT_KEY = 'slot';
/** The events table's TTL attribute (epoch seconds), as DynamoDB's Time to Live reads it. */
export const TTL_ATTRIBUTE = 'expiresAt';

interface TableSpec {
  key: KeySchemaElement[];
  attributes: Array<{ AttributeName: string; AttributeType: 'S' | 'N' }>;
  ttl?: string;
}

function specOf(names: TableNames, name: string): TableSpec {
  if (name === names.events)
    return {
      key: [
        { AttributeName: KEY, KeyType: 'HASH' },
        { AttributeName: SORT_KEY, KeyType: 'RANGE' },
      ],
      attributes: [
        { AttributeName: KEY, AttributeType: 'S' },
        { AttributeName: SORT_KEY, AttributeType: 'N' },
      ],
      ttl: TTL_ATTRIBUTE,
    };
  return { key: [{ AttributeName: KEY, KeyType: 'HASH' }], attributes: [{ AttributeName: KEY, AttributeType: 'S' }] };
}

export function dynamoClient(config: { AWS_REGION: string; DYNAMODB_ENDPOINT?: string }): DynamoDBClient {
  return new DynamoDBClient({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
}

const keyText = (key: KeySchemaElement[]) => key.map((k) => `${k.AttributeName} ${k.KeyType}`).join(', ');

/** What is wrong with a table as described, or undefined when it is as defined. */
async function tableProblem(
  client: DynamoDBClient,
  name: string,
  spec: TableSpec,
  t: TableDescription | undefined,
): Promise<string | undefined> {
  if (!t) return `${name}: missing`;
  const key = t.KeySchema ?? [];
  if (keyText(key) !== keyText(spec.key)) return `${name}: key schema ${keyText(key) || 'none'}, expected ${keyText(spec.key)}`;
  if (t.BillingModeSummary?.BillingMode !== 'PAY_PER_REQUEST')
    return `${name}: billing mode ${t.BillingModeSummary?.BillingMode ?? 'PROVISIONED'}, expected PAY_PER_REQUEST`;
  if (spec.ttl) {
    const ttl = (await client.send(new DescribeTimeToLiveCommand({ TableName: name }))).TimeToLiveDescription;
    if (ttl?.TimeToLiveStatus !== 'ENABLED' || ttl.AttributeName !== spec.ttl)
      return `${name}: time to live ${ttl?.TimeToLiveStatus ?? 'DISABLED'} on ${ttl?.AttributeName ?? 'no attribute'}, expected ENABLED on ${spec.ttl}`;
  }
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
    const p = await tableProblem(client, name, specOf(names, name), await describe(client, name));
    if (p) problems.push(p);
  }
  return problems;
}

/** Turns Time to Live on unless it is on already (DynamoDB refuses a second identical update). */
async function ensureTtl(client: DynamoDBClient, name: string, attribute: string): Promise<void> {
  const ttl = (await client.send(new DescribeTimeToLiveCommand({ TableName: name }))).TimeToLiveDescription;
  if (ttl?.TimeToLiveStatus === 'ENABLED' || ttl?.TimeToLiveStatus === 'ENABLING') return;
  await client.send(new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: { AttributeName: attribute, Enabled: true } }));
}

/**
 * Creates the missing tables (idempotent: a table created meanwhile by another run is fine),
 * waits until active, turns on Time to Live where the table has one (also on a table an older
 * version created), then checks.
 */
export async function ensureTables(client: DynamoDBClient, names: TableNames): Promise<{ created: string[]; problems: string[] }> {
  const created: string[] = [];
  for (const name of Object.values(names)) {
    const spec = specOf(names, name);
    if (!(await describe(client, name))) {
      try {
        await client.send(
          new CreateTableCommand({
            TableName: name,
            BillingMode: 'PAY_PER_REQUEST',
            AttributeDefinitions: spec.attributes,
            KeySchema: spec.key,
          }),
        );
        created.push(name);
      } catch (error) {
        if (!(error instanceof ResourceInUseException)) throw error;
      }
      await waitUntilTableExists({ client, maxWaitTime: 120 }, { TableName: name });
    }
    if (spec.ttl) await ensureTtl(client, name, spec.ttl);
  }
  return { created, problems: await checkTables(client, names) };
}
