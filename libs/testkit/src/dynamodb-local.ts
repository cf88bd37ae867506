import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { StartContext, Started } from './components';
import { classpath, resolveJars } from './maven';
import { CACHE_DIR, MAVEN_DIR } from './paths';
import { freePort } from './ports';
import { spawnDaemon, stopProcess, tail, waitUntilReady } from './process';

const run = promisify(execFile);

/** DESIGN.md "Harness": the JVM flags of the small AWS stand-ins (DynamoDB Local, S3Proxy). */
const JVM_FLAGS = ['-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'];
const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 60_000;
const LAUNCHER_CLASS = 'LoopbackServerRunner';

/**
 * Region and credentials for SDK clients talking to DynamoDB Local / S3Proxy. Both accept any
 * credentials; DynamoDB Local only wants the access key id to be letters and digits.
 */
export const LOCAL_AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
} as const;

export const LOCAL_AWS_CREDENTIALS = {
  accessKeyId: LOCAL_AWS_ENV.AWS_ACCESS_KEY_ID,
  secretAccessKey: LOCAL_AWS_ENV.AWS_SECRET_ACCESS_KEY,
};

/**
 * Compiles `maven/dynamodb/LoopbackServerRunner.java` (ServerRunner bound to 127.0.0.1: DynamoDB
 * Local itself has no bind-address option) against the resolved jars, once per source/classpath
 * into `.cache/classes/`, and returns that folder.
 */
async function compileLauncher(jars: string): Promise<string> {
  const source = path.join(MAVEN_DIR, 'dynamodb', `${LAUNCHER_CLASS}.java`);
  const hash = crypto.createHash('sha256').update(fs.readFileSync(source)).update(jars).digest('hex').slice(0, 10);
  const target = path.join(CACHE_DIR, 'classes', `dynamodb-launcher-${hash}`);
  if (fs.existsSync(path.join(target, '.complete'))) return target;

  const staging = `${target}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  try {
    await run('javac', ['-nowarn', '-d', staging, '-cp', classpath(jars), source], { timeout: 120_000 });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`compiling ${source} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: error });
  }
  fs.writeFileSync(path.join(staging, '.complete'), new Date().toISOString());
  try {
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(staging, target);
  } catch (error) {
    // A concurrent harness compiled the same launcher first.
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(path.join(target, '.complete'))) throw error;
  }
  return target;
}

/** True once DynamoDB Local answers a real SDK request. */
export async function dynamoDbAnswers(endpoint: string): Promise<boolean> {
  const { DynamoDBClient, ListTablesCommand } = await import('@aws-sdk/client-dynamodb');
  const client = new DynamoDBClient({
    endpoint,
    region: LOCAL_AWS_ENV.AWS_REGION,
    credentials: LOCAL_AWS_CREDENTIALS,
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000 },
  });
  try {
    const out = await client.send(new ListTablesCommand({ Limit: 1 }));
    return Array.isArray(out.TableNames);
  } finally {
    client.destroy();
  }
}

/**
 * Starts DynamoDB Local (Maven Central `software.amazon.dynamodb:DynamoDBLocal`, see
 * maven/dynamodb/pom.xml) in memory on a free loopback port. `-sharedDb`: every access key and
 * region sees the same tables (without it, `-inMemory` partitions tables per key and region);
 * tests isolate themselves by unique table names. sqlite4java's JNI library is the Maven
 * artifact `libsqlite4java-linux-amd64-1.0.392.so` that copy-dependencies puts next to the jars.
 * A port collision is retried with a new port.
 */
export async function startDynamoDbLocal(ctx: StartContext): Promise<Started> {
  const jars = await resolveJars('dynamodb');
  const launcher = await compileLauncher(jars);
  const nativeLib = fs.readdirSync(jars).find((f) => /^libsqlite4java-linux-amd64-[\d.]+\.so$/.test(f));
  if (!nativeLib) throw new Error(`dynamodb: no libsqlite4java-linux-amd64-*.so in ${jars} (see maven/dynamodb/pom.xml)`);
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const proc = spawnDaemon(
      'dynamodb',
      'java',
      [
        ...JVM_FLAGS,
        '-Djava.awt.headless=true',
        // DynamoDB Local's own loader (SQLiteLibraryLoader) tries org.sqlite.lib.path/name first,
        // then extracts the copy bundled in DynamoDBLocal.jar into a temp dir, then java.library.path.
        // Naming the Maven artifact loads it in place (nothing extracted to /tmp, where a
        // SIGKILLed JVM would leave it); the fallbacks stay inside the run dir.
        `-Dorg.sqlite.lib.path=${jars}`,
        `-Dorg.sqlite.lib.name=${nativeLib}`,
        `-Dorg.sqlite.tmpdir=${ctx.dir}`,
        `-Djava.library.path=${jars}`,
        `-Dsqlite4java.library.path=${jars}`,
        '-cp',
        `${launcher}${path.delimiter}${classpath(jars)}`,
        LAUNCHER_CLASS,
        '-inMemory',
        '-sharedDb',
        '-port',
        String(port),
        '-disableTelemetry',
      ],
      { cwd: ctx.dir, logFile: path.join(ctx.dir, `dynamodb-${port}.log`) },
    );
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady(proc, () => dynamoDbAnswers(endpoint), READY_TIMEOUT_MS);
      return { env: { DYNAMODB_ENDPOINT: endpoint, ...LOCAL_AWS_ENV }, processes: [proc], dirs: [] };
    } catch (error) {
      lastError = error;
      await stopProcess(proc.pid, 5_000);
      if (!/Address already in use|BindException|Failed to bind/.test(tail(proc.logFile, 200))) break;
    }
  }
  throw lastError;
}
