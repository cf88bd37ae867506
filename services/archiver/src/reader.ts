import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { manifestPrefix } from './layout';
import type { ManifestEntry } from './writer';

const gunzip = promisify(gunzipCallback);

/** Keys under a prefix, every page. */
export async function listKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function getBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!answer.Body) throw new Error(`s3://${bucket}/${key} has no body`);
  return Buffer.from(await answer.Body.transformToByteArray());
}

/** The manifest of one source and hour: the entries of every object (raw and undelivered) holding its records. */
export async function readManifest(client: S3Client, bucket: string, sourceId: string, hour: string): Promise<ManifestEntry[]> {
  const keys = await listKeys(client, bucket, manifestPrefix(sourceId, hour));
  const entries: ManifestEntry[] = [];
  for (const key of keys) entries.push(JSON.parse((await getBytes(client, bucket, key)).toString('utf8')) as ManifestEntry);
  return entries;
}

/** The JSON lines of one archive object. */
export async function readObjectLines(client: S3Client, bucket: string, key: string): Promise<string[]> {
  const text = (await gunzip(await getBytes(client, bucket, key))).toString('utf8');
  return text.split('\n').filter((line) => line.length > 0);
}
