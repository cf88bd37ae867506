import fs from 'node:fs';
import path from 'node:path';
import type { Started, StartContext } from './components';
import { startKafkaBroker } from './kafka-broker';
import { classpath, resolveJars } from './maven';
import { MAVEN_DIR } from './paths';
import { spawnDaemon, stopProcess, type ManagedProcess } from './process';

export interface MirrorMakerOptions {
  /** Scratch folder for the config and log. */
  dir: string;
  /** Cluster mirrored from (tapi's secondary). */
  source: string;
  /** Cluster mirrored into (the primary, which dedup reads). */
  target: string;
  /** Java regex of topics to mirror; tapi's ingest topic by default. */
  topics?: string;
  name?: string;
}

export interface MirrorMaker {
  process: ManagedProcess;
  configFile: string;
}

/**
 * mm2.properties for a one-way secondary → primary mirror that keeps topic names
 * (IdentityReplicationPolicy) and partitions, so mirrored events land in the primary's
 * cdp.ingest on the partition they had: dedup reads one input, co-partitioning holds.
 */
export function mirrorMakerProperties(options: MirrorMakerOptions): string {
  return [
    'clusters=secondary, primary',
    `secondary.bootstrap.servers=${options.source}`,
    `primary.bootstrap.servers=${options.target}`,
    'secondary->primary.enabled=true',
    `secondary->primary.topics=${options.topics ?? '.*ingest'}`,
    'primary->secondary.enabled=false',
    'replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy',
    // Single-broker test clusters: every internal topic with one replica.
    'replication.factor=1',
    'checkpoints.topic.replication.factor=1',
    'heartbeats.topic.replication.factor=1',
    'offset-syncs.topic.replication.factor=1',
    'offset.storage.replication.factor=1',
    'status.storage.replication.factor=1',
    'config.storage.replication.factor=1',
    'emit.checkpoints.enabled=false',
    'emit.heartbeats.enabled=false',
    'sync.group.offsets.enabled=false',
    'sync.topic.acls.enabled=false',
    'refresh.topics.interval.seconds=5',
    'tasks.max=1',
    // Producer into the primary: no loss on a primary restart.
    'primary.producer.acks=all',
    'primary.producer.enable.idempotence=true',
    'secondary.consumer.auto.offset.reset=earliest',
    '',
  ].join('\n');
}

/** Starts MirrorMaker 2 (dedicated mode, Kafka's own `connect-mirror` from the same release). */
export async function startMirrorMaker(options: MirrorMakerOptions): Promise<MirrorMaker> {
  const jars = await resolveJars('kafka');
  fs.mkdirSync(options.dir, { recursive: true });
  const configFile = path.join(options.dir, `${options.name ?? 'mirror-maker'}.properties`);
  fs.writeFileSync(configFile, mirrorMakerProperties(options));
  const log4j = `-Dlog4j.configuration=file:${path.join(MAVEN_DIR, 'kafka', 'log4j.properties')}`;
  const proc = spawnDaemon(
    options.name ?? 'mirror-maker',
    'java',
    [
      '-Xmx256m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-Djava.awt.headless=true',
      log4j,
      '-cp',
      classpath(jars),
      'org.apache.kafka.connect.mirror.MirrorMaker',
      configFile,
    ],
    { logFile: path.join(options.dir, `${options.name ?? 'mirror-maker'}.log`) },
  );
  return { process: proc, configFile };
}

export async function stopMirrorMaker(mm: MirrorMaker): Promise<void> {
  await stopProcess(mm.process.pid, 15_000);
}

/**
 * The `mirror` harness component: a secondary broker plus MirrorMaker 2 from it into the
 * primary (`KAFKA_BROKERS` of the environment if set, else a primary started here too). Use it
 * instead of `kafka2`, not with it.
 */
export async function startMirrorComponent(ctx: StartContext): Promise<Started> {
  const processes: ManagedProcess[] = [];
  const dirs: string[] = [];
  const env: Record<string, string> = {};
  let primary = process.env.KAFKA_BROKERS;
  if (!primary) {
    const p = await startKafkaBroker({ dir: ctx.dir, name: 'kafka' });
    processes.push(p.process);
    dirs.push(p.dataDir);
    primary = p.brokers;
    env.KAFKA_BROKERS = primary;
  }
  const secondary = await startKafkaBroker({ dir: ctx.dir, name: 'kafka2' });
  processes.push(secondary.process);
  dirs.push(secondary.dataDir);
  env.KAFKA_SECONDARY_BROKERS = secondary.brokers;
  const mm = await startMirrorMaker({ dir: path.join(ctx.dir, 'mirror-maker'), source: secondary.brokers, target: primary });
  processes.push(mm.process);
  dirs.push(path.join(ctx.dir, 'mirror-maker'));
  return { env, processes, dirs };
}
