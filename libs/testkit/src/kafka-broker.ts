import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { classpath, resolveJars } from './maven';
import { MAVEN_DIR } from './paths';
import { freePort, canConnect } from './ports';
import { isAlive, spawnDaemon, stopProcess, tail, waitUntilReady, type ManagedProcess } from './process';

const run = promisify(execFile);

export interface KafkaBroker {
  /** The PLAINTEXT listener, `127.0.0.1:<port>`. */
  brokers: string;
  /**
   * A second listener of the same broker that requires SASL: SCRAM-SHA-256, SCRAM-SHA-512 and
   * PLAIN, one user with a password made for this broker (what MSK or Confluent ask of clients).
   */
  sasl: SaslListener;
  process: ManagedProcess;
  dataDir: string;
}

export interface SaslListener {
  brokers: string;
  username: string;
  password: string;
}

const SASL_USER = 'cdp-test';

const LOG4J = `-Dlog4j.configuration=file:${path.join(MAVEN_DIR, 'kafka', 'log4j.properties')}`;
const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 90_000;

interface Ports {
  broker: number;
  sasl: number;
  controller: number;
}

function serverProperties(ports: Ports, logDir: string, sasl: SaslListener): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=PLAINTEXT://127.0.0.1:${ports.broker},SASL_PLAINTEXT://127.0.0.1:${ports.sasl},CONTROLLER://127.0.0.1:${ports.controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.broker},SASL_PLAINTEXT://127.0.0.1:${ports.sasl}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT',
    // The SASL listener: SCRAM users live in the cluster metadata (written by `format
    // --add-scram`); PLAIN checks the user listed in its login module.
    'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN',
    'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${sasl.username}="${sasl.password}";`,
    `log.dirs=${logDir}`,
    'num.partitions=1',
    // A single broker: every internal topic must have replication factor 1, or consumers spin
    // on "group coordinator not available".
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'group.initial.rebalance.delay.ms=0',
    // Crash tests run consumers with short sessions so a SIGKILLed member is replaced quickly.
    'group.min.session.timeout.ms=1000',
    // Topics are created explicitly by libs/kafka, as in production.
    'auto.create.topics.enable=false',
    'num.network.threads=2',
    'num.io.threads=2',
    'log.cleaner.dedupe.buffer.size=16777216',
    '',
  ].join('\n');
}

async function brokerAnswers(brokers: string): Promise<boolean> {
  const admin = new Kafka({ clientId: 'cdp-harness', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * Starts a single-node KRaft Kafka (combined broker+controller) on free loopback ports from
 * Maven Central jars. Ports are picked before start; a collision (another process grabbed one
 * in between) is retried with new ports.
 */
export async function startKafkaBroker(options: { dir: string; name?: string }): Promise<KafkaBroker> {
  const name = options.name ?? 'kafka';
  const jars = await resolveJars('kafka');
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const ports: Ports = { broker: await freePort(), sasl: await freePort(), controller: await freePort() };
    const brokerPort = ports.broker;
    const dataDir = path.join(options.dir, `${name}-${brokerPort}`);
    fs.mkdirSync(dataDir, { recursive: true });
    // Hex: no character that needs quoting in the properties file or the --add-scram argument.
    const sasl: SaslListener = { brokers: `127.0.0.1:${ports.sasl}`, username: SASL_USER, password: crypto.randomBytes(16).toString('hex') };
    const config = path.join(dataDir, 'server.properties');
    fs.writeFileSync(config, serverProperties(ports, path.join(dataDir, 'data'), sasl), { mode: 0o600 });
    // base64url may start with '-': always pass it as --cluster-id=<id> so it is not read as a flag.
    const clusterId = crypto.randomBytes(16).toString('base64url');
    const scramUsers = ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((m) => ['--add-scram', `${m}=[name=${sasl.username},password=${sasl.password}]`]);
    await run(
      'java',
      ['-Xmx256m', '-XX:TieredStopAtLevel=1', LOG4J, '-cp', classpath(jars), 'kafka.tools.StorageTool', 'format', `--cluster-id=${clusterId}`, '-c', config, '--ignore-formatted', ...scramUsers],
      { timeout: 120_000 },
    );
    const proc = spawnDaemon(
      name,
      'java',
      // The GC settings are those of Kafka's own start script (kafka-run-class.sh): G1 with a
      // 20 ms pause goal. The JVM's default goal (200 ms) shows up directly in produce latency.
      ['-Xms256m', '-Xmx512m', '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-XX:ActiveProcessorCount=2', '-Djava.awt.headless=true', LOG4J, '-cp', classpath(jars), 'kafka.Kafka', config],
      { logFile: path.join(dataDir, 'kafka.log') },
    );
    const brokers = `127.0.0.1:${brokerPort}`;
    try {
      await waitUntilReady(proc, async () => (await canConnect(brokerPort)) && (await brokerAnswers(brokers)), READY_TIMEOUT_MS);
      return { brokers, sasl, process: proc, dataDir };
    } catch (error) {
      lastError = error;
      await stopProcess(proc.pid, 5_000);
      if (!/Address already in use|BindException/.test(tail(proc.logFile, 200))) break;
    }
  }
  throw lastError;
}

export async function stopKafkaBroker(broker: KafkaBroker): Promise<void> {
  if (isAlive(broker.process.pid)) await stopProcess(broker.process.pid, 15_000);
  fs.rmSync(broker.dataDir, { recursive: true, force: true });
}
