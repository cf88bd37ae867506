// Child process of kafka-cluster.int.test.ts (run from dist/; build first): starts the topic
// size limit read and a probe (both connect the admin client) and closes the cluster without
// waiting for them, as when their callers' deadlines gave up. Prints `closed`; the process must
// then exit by itself: nothing the cluster opened may outlive close().
import { createKafka } from '@cdp/kafka';
import { createLogger } from '@cdp/log';
import { requireEnv } from '@cdp/testkit';
import { KafkaCluster } from '../kafka-cluster';

async function main(): Promise<void> {
  const logger = createLogger({ name: 'cluster-close', level: 'warn' });
  const kafka = createKafka({ brokers: [requireEnv('KAFKA_BROKERS')], clientId: 'cluster-close', logger });
  const cluster = new KafkaCluster(kafka, requireEnv('TOPIC'), logger, 1_000);
  void cluster.maxMessageBytes().catch(() => undefined);
  void cluster.probe().catch(() => undefined);
  await cluster.close();
  process.stdout.write('closed\n');
}

void main();
