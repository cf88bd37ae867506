import fs from 'node:fs';
import path from 'node:path';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { StartContext, Started } from './components';
import { LOCAL_AWS_CREDENTIALS, LOCAL_AWS_ENV } from './dynamodb-local';
import { classpath, resolveJars } from './maven';
import { freePort } from './ports';
import { spawnDaemon, stopProcess, tail, waitUntilReady } from './process';

/** DESIGN.md "Harness": the JVM flags of the small AWS stand-ins (DynamoDB Local, S3Proxy). */
const JVM_FLAGS = ['-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'];
const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 60_000;
/** The bucket the harness creates at start, for services that need one (`S3_BUCKET`). */
export const S3_TEST_BUCKET = 'cdp-test';

/**
 * S3 client settings for S3Proxy: path-style addressing (no `<bucket>.127.0.0.1` host names) and
 * checksums only where an operation requires them (research/infra.md §4).
 */
export function localS3ClientConfig(endpoint: string): S3ClientConfig {
  return {
    endpoint,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: LOCAL_AWS_CREDENTIALS,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
}

function properties(endpoint: string): string {
  return [
    `s3proxy.endpoint=${endpoint}`,
    's3proxy.authorization=none',
    // In-memory backend: every start is empty, nothing is written to disk.
    'jclouds.provider=transient',
    'jclouds.identity=local',
    'jclouds.credential=local',
    '',
  ].join('\n');
}

/** Runs `fn` with a short-lived S3 client that fails fast (no retries). */
async function withS3<T>(
  endpoint: string,
  fn: (client: import('@aws-sdk/client-s3').S3Client, sdk: typeof import('@aws-sdk/client-s3')) => Promise<T>,
): Promise<T> {
  const sdk = await import('@aws-sdk/client-s3');
  const client = new sdk.S3Client({
    ...localS3ClientConfig(endpoint),
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 5_000 },
  });
  try {
    return await fn(client, sdk);
  } finally {
    client.destroy();
  }
}

/** True once S3Proxy answers a real SDK request. */
export function s3Answers(endpoint: string): Promise<boolean> {
  return withS3(endpoint, async (client, sdk) => {
    const out = await client.send(new sdk.ListBucketsCommand({}));
    return out.$metadata.httpStatusCode === 200;
  });
}

/**
 * Starts S3Proxy (Maven Central `org.gaul:s3proxy`, `jar-with-dependencies`, see
 * maven/s3proxy/pom.xml) with the in-memory `transient` backend and no authorization on a free
 * loopback port, then creates the `cdp-test` bucket. A port collision is retried with a new port.
 */
export async function startS3Proxy(ctx: StartContext): Promise<Started> {
  const jars = await resolveJars('s3proxy');
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const config = path.join(ctx.dir, `s3proxy-${port}.properties`);
    fs.writeFileSync(config, properties(endpoint));
    const proc = spawnDaemon(
      's3',
      'java',
      [
        ...JVM_FLAGS,
        '-Djava.awt.headless=true',
        // The jar's logback.xml logs at INFO; this only silences logback's own start-up chatter.
        '-Dlogback.statusListenerClass=ch.qos.logback.core.status.NopStatusListener',
        '-cp',
        classpath(jars),
        'org.gaul.s3proxy.Main',
        '--properties',
        config,
      ],
      { cwd: ctx.dir, logFile: path.join(ctx.dir, `s3proxy-${port}.log`) },
    );
    try {
      await waitUntilReady(proc, () => s3Answers(endpoint), READY_TIMEOUT_MS);
      await withS3(endpoint, (client, sdk) => client.send(new sdk.CreateBucketCommand({ Bucket: S3_TEST_BUCKET })));
      return { env: { S3_ENDPOINT: endpoint, S3_BUCKET: S3_TEST_BUCKET, ...LOCAL_AWS_ENV }, processes: [proc], dirs: [] };
    } catch (error) {
      lastError = error;
      await stopProcess(proc.pid, 5_000);
      if (!/Address already in use|BindException|Failed to bind/.test(tail(proc.logFile, 200))) break;
    }
  }
  throw lastError;
}
