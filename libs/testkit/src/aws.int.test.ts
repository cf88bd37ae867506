import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { dynamoDbAnswers } from './dynamodb-local';
import { requireEnv } from './env';
import { isAlive } from './process';
import { currentRunId, uniqueSuffix } from './run-id';
import { s3Answers } from './s3proxy';

const run = promisify(execFile);
const CLI = path.join(__dirname, '..', 'dist', 'cli.js');

/** `t<run>-<label>-<rand>`: valid as a DynamoDB table name and as an S3 bucket name. */
const uniqueName = (label: string) => `t${currentRunId()}-${label}-${uniqueSuffix()}`;

describe('DynamoDB Local through @aws-sdk/client-dynamodb', () => {
  // Region and credentials come from the harness env (AWS_REGION, AWS_ACCESS_KEY_ID, ...).
  let client: DynamoDBClient;
  const tables: string[] = [];

  beforeAll(() => {
    expect(process.env.AWS_REGION).toBeTruthy();
    client = new DynamoDBClient({ endpoint: requireEnv('DYNAMODB_ENDPOINT') });
  });

  afterAll(async () => {
    for (const TableName of tables) await client.send(new DeleteTableCommand({ TableName })).catch(() => undefined);
    client.destroy();
  });

  async function createTable(label: string): Promise<string> {
    const TableName = uniqueName(label);
    tables.push(TableName);
    await client.send(
      new CreateTableCommand({
        TableName,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName });
    return TableName;
  }

  it('puts an item and reads it back strongly consistent', async () => {
    const TableName = await createTable('item');
    const item = {
      pk: { S: 'user#1' },
      sk: { S: 'profile' },
      n: { N: '42' },
      tags: { SS: ['a', 'b'] },
      blob: { B: Buffer.from([0, 1, 255]) },
    };
    await client.send(new PutItemCommand({ TableName, Item: item }));
    const got = await client.send(new GetItemCommand({ TableName, Key: { pk: item.pk, sk: item.sk }, ConsistentRead: true }));
    expect(got.Item?.n).toEqual({ N: '42' });
    expect(got.Item?.tags.SS?.sort()).toEqual(['a', 'b']);
    expect(Buffer.from(got.Item?.blob.B ?? [])).toEqual(Buffer.from([0, 1, 255]));
    const missing = await client.send(
      new GetItemCommand({ TableName, Key: { pk: { S: 'nobody' }, sk: { S: 'profile' } }, ConsistentRead: true }),
    );
    expect(missing.Item).toBeUndefined();
  });

  it('rejects a conditional put on an existing key and keeps the first value', async () => {
    const TableName = await createTable('cond');
    const key = { pk: { S: 'dedup#m1' }, sk: { S: 'seen' } };
    const putIfAbsent = (v: string) =>
      client.send(new PutItemCommand({ TableName, Item: { ...key, v: { S: v } }, ConditionExpression: 'attribute_not_exists(pk)' }));
    await putIfAbsent('first');
    await expect(putIfAbsent('second')).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    const got = await client.send(new GetItemCommand({ TableName, Key: key, ConsistentRead: true }));
    expect(got.Item?.v).toEqual({ S: 'first' });
  });

  it('queries a partition by sort-key prefix, in sort-key order', async () => {
    const TableName = await createTable('query');
    for (const sk of ['evt#3', 'evt#1', 'other#1', 'evt#2']) {
      await client.send(new PutItemCommand({ TableName, Item: { pk: { S: 'src#a' }, sk: { S: sk } } }));
    }
    await client.send(new PutItemCommand({ TableName, Item: { pk: { S: 'src#b' }, sk: { S: 'evt#9' } } }));
    const out = await client.send(
      new QueryCommand({
        TableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': { S: 'src#a' }, ':prefix': { S: 'evt#' } },
        ConsistentRead: true,
      }),
    );
    expect(out.Items?.map((i) => i.sk.S)).toEqual(['evt#1', 'evt#2', 'evt#3']);
    expect(out.Count).toBe(3);
  });
});

describe('S3Proxy through @aws-sdk/client-s3', () => {
  let client: S3Client;

  beforeAll(() => {
    client = new S3Client({
      endpoint: requireEnv('S3_ENDPOINT'),
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  });

  afterAll(() => client.destroy());

  it('has created the S3_BUCKET bucket at start', async () => {
    const out = await client.send(new HeadBucketCommand({ Bucket: requireEnv('S3_BUCKET') }));
    expect(out.$metadata.httpStatusCode).toBe(200);
  });

  it('puts, gets, lists by prefix and deletes objects in a new bucket', async () => {
    const Bucket = uniqueName('objects');
    await client.send(new CreateBucketCommand({ Bucket }));
    const large = crypto.randomBytes(5 * 1024 * 1024 + 123);
    const objects: Record<string, Buffer> = {
      'batch/2024/a.json': Buffer.from(JSON.stringify({ hello: 'wörld' })),
      'batch/2024/b.bin': large,
      'other/c.txt': Buffer.from('not in the prefix'),
    };

    await client.send(
      new PutObjectCommand({ Bucket, Key: 'batch/2024/a.json', Body: JSON.stringify({ hello: 'wörld' }), ContentType: 'application/json' }),
    );
    await client.send(new PutObjectCommand({ Bucket, Key: 'batch/2024/b.bin', Body: large }));
    await client.send(new PutObjectCommand({ Bucket, Key: 'other/c.txt', Body: 'not in the prefix' }));

    for (const [Key, expected] of Object.entries(objects)) {
      const got = await client.send(new GetObjectCommand({ Bucket, Key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      expect(bytes.length).toBe(expected.length);
      expect(bytes.equals(expected)).toBe(true);
    }
    const json = await client.send(new GetObjectCommand({ Bucket, Key: 'batch/2024/a.json' }));
    expect(json.ContentType).toBe('application/json');

    const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'batch/' }));
    expect(listed.Contents?.map((o) => [o.Key, o.Size])).toEqual([
      ['batch/2024/a.json', objects['batch/2024/a.json'].length],
      ['batch/2024/b.bin', large.length],
    ]);

    for (const Key of Object.keys(objects)) await client.send(new DeleteObjectCommand({ Bucket, Key }));
    expect((await client.send(new ListObjectsV2Command({ Bucket }))).KeyCount).toBe(0);
    await expect(client.send(new GetObjectCommand({ Bucket, Key: 'other/c.txt' }))).rejects.toMatchObject({ name: 'NoSuchKey' });
    await client.send(new DeleteBucketCommand({ Bucket }));
  });
});

describe('infra CLI with dynamodb and s3', () => {
  it('`up` starts both on loopback; `down` leaves no process behind', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdp-infra-cli-'));
    const env = { ...process.env, CDP_INFRA_DIR: dir };
    try {
      await run(process.execPath, [CLI, 'up', 'dynamodb,s3'], { env });
      const written = fs.readFileSync(path.join(dir, 'env'), 'utf8');
      const dynamodb = /^DYNAMODB_ENDPOINT=(\S+)$/m.exec(written)?.[1];
      const s3 = /^S3_ENDPOINT=(\S+)$/m.exec(written)?.[1];
      expect(dynamodb).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(s3).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(written).toMatch(/^S3_BUCKET=cdp-test$/m);
      expect(written).toMatch(/^AWS_REGION=us-east-1$/m);
      expect(await dynamoDbAnswers(dynamodb!)).toBe(true);
      expect(await s3Answers(s3!)).toBe(true);
      const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { processes: Array<{ pid: number }> };
      expect(state.processes).toHaveLength(2);
      expect(state.processes.every((p) => isAlive(p.pid))).toBe(true);

      await run(process.execPath, [CLI, 'down'], { env });
      expect(state.processes.some((p) => isAlive(p.pid))).toBe(false);
    } finally {
      await run(process.execPath, [CLI, 'down'], { env }).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
