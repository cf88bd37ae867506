import path from 'node:path';
import { startKafkaBroker } from './kafka-broker';
import { checkMysqlReachable } from './mysql-check';
import { freePort } from './ports';
import { spawnDaemon, waitUntilReady, type ManagedProcess } from './process';
import { REPO_ROOT } from './paths';
import { canConnect } from './ports';

/** What a started dependency contributes: env lines for `.infra/env` and processes to stop. */
export interface Started {
  env: Record<string, string>;
  processes: ManagedProcess[];
  /** Folders to delete on `down`. */
  dirs: string[];
}

export interface StartContext {
  /** Scratch folder of this run (data dirs, logs). */
  dir: string;
}

export type ComponentName = 'kafka' | 'kafka2' | 'mirror' | 'mysql' | 'consul' | 'dynamodb' | 's3';

type Starter = (ctx: StartContext) => Promise<Started>;

const kafka =
  (envKey: string, name: string): Starter =>
  async (ctx) => {
    const broker = await startKafkaBroker({ dir: ctx.dir, name });
    return { env: { [envKey]: broker.brokers }, processes: [broker.process], dirs: [broker.dataDir] };
  };

const consul: Starter = async (ctx) => {
  const port = await freePort();
  const cli = path.join(REPO_ROOT, 'libs', 'consul-dev', 'dist', 'cli.js');
  // Consul's defaults, except a lower minimum TTL so tests may use short sessions; the local
  // stack (CDP_INFRA_CONSUL_DEFAULTS=1) keeps Consul's own 10 s, like a real agent.
  const ttl = process.env.CDP_INFRA_CONSUL_DEFAULTS === '1' ? [] : ['--min-ttl-ms', '1000'];
  const proc = spawnDaemon('consul-dev', process.execPath, [cli, '--port', String(port), ...ttl], {
    logFile: path.join(ctx.dir, 'consul-dev.log'),
  });
  await waitUntilReady(proc, () => canConnect(port), 20_000);
  return { env: { CONSUL_HTTP_ADDR: `127.0.0.1:${port}` }, processes: [proc], dirs: [] };
};

const mysql: Starter = async () => {
  const url = await checkMysqlReachable();
  return { env: { MYSQL_URL: url }, processes: [], dirs: [] };
};

const starters: Record<ComponentName, Starter> = {
  kafka: kafka('KAFKA_BROKERS', 'kafka'),
  kafka2: kafka('KAFKA_SECONDARY_BROKERS', 'kafka2'),
  // A secondary broker plus MirrorMaker 2 into the primary (tapi failover); replaces kafka2.
  mirror: (ctx) => require('./mirror-maker').startMirrorComponent(ctx),
  mysql,
  consul,
  dynamodb: (ctx) => require('./dynamodb-local').startDynamoDbLocal(ctx),
  s3: (ctx) => require('./s3proxy').startS3Proxy(ctx),
};

export const ALL_COMPONENTS: ComponentName[] = ['kafka', 'mysql', 'consul', 'dynamodb', 's3'];

export function parseComponents(list: string | undefined): ComponentName[] {
  if (!list || list === 'all') return ALL_COMPONENTS;
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(n in starters)) throw new Error(`unknown component "${n}" (known: ${Object.keys(starters).join(', ')})`);
  }
  return names as ComponentName[];
}

export function startComponent(name: ComponentName, ctx: StartContext): Promise<Started> {
  return starters[name](ctx);
}
