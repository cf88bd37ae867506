import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { classpath, resolveJars } from './maven';
import { MAVEN_DIR } from './paths';
import { freePort, canConnect } from './ports';
import { isAlive, killNow, spawnDaemon, stopProcess, tail, waitUntilReady, type ManagedProcess } from './process';

const run = promisify(execFile);

export interface KafkaBroker {
  /** The PLAINTEXT listener, `127.0.0.1:<port>`. */
  brokers: string;
  /**
   * With `secured`: listeners of the same broker that require SASL (SCRAM-SHA-256,
   * SCRAM-SHA-512 and PLAIN, one user with a password made for this broker), in plaintext and
   * over TLS with a certificate from a CA made for this broker (what MSK or Confluent ask of
   * clients).
   */
  sasl?: SaslListeners;
  process: ManagedProcess;
  dataDir: string;
}

export interface SaslListeners {
  /** SASL_PLAINTEXT. */
  brokers: string;
  /** SASL_SSL; its certificate (for 127.0.0.1) is signed by the CA in `caFile`. */
  tlsBrokers: string;
  /** PEM of the CA: what a client needs as KAFKA_SSL_CA_FILE. */
  caFile: string;
  username: string;
  password: string;
}

const SASL_USER = 'cdp-test';

const LOG4J = `-Dlog4j.configuration=file:${path.join(MAVEN_DIR, 'kafka', 'log4j.properties')}`;
const START_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 90_000;

interface Ports {
  broker: number;
  controller: number;
}

/**
 * A CA and a certificate for 127.0.0.1 signed by it, for the SASL_SSL listener (~0.2 s of
 * openssl). Returns the CA's PEM file and the broker's key + certificate PEM file (Kafka's PEM
 * key store: an unencrypted PKCS#8 key followed by the certificate).
 */
async function makeTlsFiles(dir: string): Promise<{ caFile: string; keyStore: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc'];
  await run('openssl', [
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '7',
    '-subj',
    '/CN=cdp-test-ca',
  ]);
  await run('openssl', ['req', ...ecKey, '-keyout', file('broker.key'), '-out', file('broker.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(file('broker.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    file('broker.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('broker.pem'),
    '-days',
    '7',
    '-extfile',
    file('broker.ext'),
  ]);
  fs.writeFileSync(file('keystore.pem'), fs.readFileSync(file('broker.key'), 'utf8') + fs.readFileSync(file('broker.pem'), 'utf8'), {
    mode: 0o600,
  });
  return { caFile: file('ca.pem'), keyStore: file('keystore.pem') };
}

/** The SASL settings of one listener: SCRAM users live in the cluster metadata (`format --add-scram`); PLAIN checks the user its login module lists. */
function saslListenerProperties(listener: string, sasl: SaslListeners): string[] {
  const prefix = `listener.name.${listener}`;
  return [
    `${prefix}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    `${prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    `${prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${sasl.username}="${sasl.password}";`,
  ];
}

interface Secured {
  sasl: SaslListeners;
  keyStore: string;
}

function serverProperties(ports: Ports, logDir: string, secured?: Secured): string {
  const listeners = [`PLAINTEXT://127.0.0.1:${ports.broker}`];
  if (secured) listeners.push(`SASL_PLAINTEXT://${secured.sasl.brokers}`, `SASL_SSL://${secured.sasl.tlsBrokers}`);
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.controller}`,
    `listeners=${[...listeners, `CONTROLLER://127.0.0.1:${ports.controller}`].join(',')}`,
    `advertised.listeners=${listeners.join(',')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT${secured ? ',SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL' : ''}`,
    ...(secured
      ? [
          'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN',
          ...saslListenerProperties('sasl_plaintext', secured.sasl),
          ...saslListenerProperties('sasl_ssl', secured.sasl),
          'listener.name.sasl_ssl.ssl.keystore.type=PEM',
          `listener.name.sasl_ssl.ssl.keystore.location=${secured.keyStore}`,
        ]
      : []),
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
 * A broker's secured listeners and their users: made before its storage is formatted (SCRAM
 * users go into the cluster metadata there).
 */
async function secureListeners(dataDir: string): Promise<Secured> {
  const tls = await makeTlsFiles(path.join(dataDir, 'tls'));
  const sasl: SaslListeners = {
    brokers: `127.0.0.1:${await freePort()}`,
    tlsBrokers: `127.0.0.1:${await freePort()}`,
    caFile: tls.caFile,
    username: SASL_USER,
    // Hex: no character that needs quoting in the properties file or the --add-scram argument.
    password: crypto.randomBytes(16).toString('hex'),
  };
  return { sasl, keyStore: tls.keyStore };
}

/** The broker's JVM on its formatted `dataDir` (its server.properties, its log). */
function spawnBroker(name: string, jars: string, dataDir: string): ManagedProcess {
  return spawnDaemon(
    name,
    'java',
    // The GC settings are those of Kafka's own start script (kafka-run-class.sh): G1 with a
    // 20 ms pause goal. The JVM's default goal (200 ms) shows up directly in produce latency.
    [
      '-Xms256m',
      '-Xmx512m',
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:InitiatingHeapOccupancyPercent=35',
      '-XX:+ExplicitGCInvokesConcurrent',
      '-XX:ActiveProcessorCount=2',
      '-Djava.awt.headless=true',
      LOG4J,
      '-cp',
      classpath(jars),
      'kafka.Kafka',
      path.join(dataDir, 'server.properties'),
    ],
    { logFile: path.join(dataDir, 'kafka.log') },
  );
}

/**
 * Starts a single-node KRaft Kafka (combined broker+controller) on free loopback ports from
 * Maven Central jars. Ports are picked before start; a collision (another process grabbed one
 * in between) is retried with new ports. `secured` adds the SASL listeners (`sasl`): they cost
 * the broker about 3 s more to become ready on a loaded 2-core machine, so the shared harness
 * broker has none and the tests that need them start their own.
 */
export async function startKafkaBroker(options: { dir: string; name?: string; secured?: boolean }): Promise<KafkaBroker> {
  const name = options.name ?? 'kafka';
  const jars = await resolveJars('kafka');
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const ports: Ports = { broker: await freePort(), controller: await freePort() };
    const brokerPort = ports.broker;
    const dataDir = path.join(options.dir, `${name}-${brokerPort}`);
    fs.mkdirSync(dataDir, { recursive: true });
    const secured = options.secured ? await secureListeners(dataDir) : undefined;
    const sasl = secured?.sasl;
    const config = path.join(dataDir, 'server.properties');
    fs.writeFileSync(config, serverProperties(ports, path.join(dataDir, 'data'), secured), { mode: 0o600 });
    // base64url may start with '-': always pass it as --cluster-id=<id> so it is not read as a flag.
    const clusterId = crypto.randomBytes(16).toString('base64url');
    const scramUsers = sasl
      ? ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((m) => ['--add-scram', `${m}=[name=${sasl.username},password=${sasl.password}]`])
      : [];
    await run(
      'java',
      [
        '-Xmx256m',
        '-XX:TieredStopAtLevel=1',
        LOG4J,
        '-cp',
        classpath(jars),
        'kafka.tools.StorageTool',
        'format',
        `--cluster-id=${clusterId}`,
        '-c',
        config,
        '--ignore-formatted',
        ...scramUsers,
      ],
      { timeout: 120_000 },
    );
    const proc = spawnBroker(name, jars, dataDir);
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

/**
 * Kills the broker (SIGKILL: a crash, its logs recovered at start; SIGTERM: a controlled
 * shutdown) and starts it again on the same ports and data: what a pod restart is to clients.
 * `broker.process` is the new process when it returns.
 */
export async function restartKafkaBroker(broker: KafkaBroker, signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
  if (signal === 'SIGKILL') killNow(broker.process.pid);
  await stopProcess(broker.process.pid, 30_000);
  broker.process = spawnBroker(broker.process.name, await resolveJars('kafka'), broker.dataDir);
  await waitUntilReady(broker.process, async () => brokerAnswers(broker.brokers), READY_TIMEOUT_MS);
}

export async function stopKafkaBroker(broker: KafkaBroker): Promise<void> {
  if (isAlive(broker.process.pid)) await stopProcess(broker.process.pid, 15_000);
  fs.rmSync(broker.dataDir, { recursive: true, force: true });
}
