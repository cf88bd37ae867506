// DynamoDB's batch calls to their limits (BatchGetItem 100 keys, BatchWriteItem 25 requests), a few
// calls at once, with what DynamoDB leaves unprocessed sent again after a backoff (bounded). One
// call per 100 reads or 25 writes instead of one per item is what keeps DynamoDB (and DynamoDB
// Local, a single Java process) from being identity's limit.
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { RetriableError } from '@cdp/kafka';
import { sleep } from '@cdp/lifecycle';

export const GET_BATCH = 100;
export const WRITE_BATCH = 25;
/** Batch calls in flight at once per batchGet/batchWrite. */
export const BATCH_CONCURRENCY = 4;
const MAX_UNPROCESSED_ROUNDS = 20;

type Item = Record<string, AttributeValue>;
/** Runs one DynamoDB call under a name (latency metric, error mapping). */
export type Timed = <T>(op: string, send: () => Promise<T>) => Promise<T>;

/** Runs `work` on every item, at most `limit` at once; rejects with the first failure. */
export async function eachLimit<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const backoff = (round: number) => sleep(Math.min(25 * 2 ** round, 2_000));

/** The items of `keys` that exist in `table` (in no particular order). */
export async function batchGet(
  client: DynamoDBClient,
  timed: Timed,
  op: string,
  table: string,
  keys: Item[],
  options: { consistent?: boolean; projection?: string; names?: Record<string, string> } = {},
): Promise<Item[]> {
  const found: Item[] = [];
  await eachLimit(chunks(keys, GET_BATCH), BATCH_CONCURRENCY, async (batch) => {
    for (let round = 0; batch.length > 0; round++) {
      if (round === MAX_UNPROCESSED_ROUNDS) throw new RetriableError(`DynamoDB left ${batch.length} ${op} reads unprocessed`);
      if (round > 0) await backoff(round);
      const answer = await timed(op, () =>
        client.send(
          new BatchGetItemCommand({
            RequestItems: {
              [table]: {
                Keys: batch,
                ConsistentRead: options.consistent,
                ProjectionExpression: options.projection,
                ExpressionAttributeNames: options.names,
              },
            },
          }),
        ),
      );
      found.push(...(answer.Responses?.[table] ?? []));
      batch = answer.UnprocessedKeys?.[table]?.Keys ?? [];
    }
  });
  return found;
}

/** Every request written to `table` (puts and deletes; at most one per key in a batch of 25). */
export async function batchWrite(client: DynamoDBClient, timed: Timed, op: string, table: string, requests: WriteRequest[]): Promise<void> {
  await eachLimit(chunks(requests, WRITE_BATCH), BATCH_CONCURRENCY, async (batch) => {
    for (let round = 0; batch.length > 0; round++) {
      if (round === MAX_UNPROCESSED_ROUNDS) throw new RetriableError(`DynamoDB left ${batch.length} ${op} writes unprocessed`);
      if (round > 0) await backoff(round);
      const answer = await timed(op, () => client.send(new BatchWriteItemCommand({ RequestItems: { [table]: batch } })));
      batch = answer.UnprocessedItems?.[table] ?? [];
    }
  });
}
