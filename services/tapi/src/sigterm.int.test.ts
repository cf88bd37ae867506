import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createKafka, topicNames } from '@cdp/kafka';
import { createTestTopics } from '@cdp/kafka/testing';
import { createLogger } from '@cdp/log';
import { freePort, requireEnv, sleep, startServiceProcess, testTopicPrefix } from '@cdp/testkit';
import { Spool } from './spool';
import { basicAuth, EnvelopeCollector, workspaceJson, WRITE_KEY } from './testing/harness';

const logger = createLogger({ name: 'tapi-test', level: 'silent' });

describe('tapi process: SIGTERM drains the spool before exiting', () => {
  it('spools while Kafka is unreachable, then drains everything on SIGTERM once Kafka takes it', async () => {
    const brokers = requireEnv('KAFKA_BROKERS');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapi-sigterm-'));
    const prefix = testTopicPrefix('tapi-sigterm');
    fs.writeFileSync(path.join(dir, 'workspace.json'), workspaceJson());
    const [port, relayPort] = [await freePort(), await freePort()];
    // tapi reaches Kafka through a relay that is not listening yet: it starts (verifying its
    // topics is skipped while Kafka does not answer) and spools. Once the relay listens, the
    // bootstrap answers and the clients go on to the broker's own address.
    await createTestTopics(createKafka({ brokers: [brokers], clientId: 'tapi-test', logger }), prefix, { partitions: 3 });
    const [brokerHost, brokerPort] = brokers.split(',')[0].split(':');
    const relay = net.createServer((socket) => {
      const upstream = net.connect(Number(brokerPort), brokerHost);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    const tapi = await startServiceProcess(
      'tapi',
      {
        PORT: String(port),
        HOST: '127.0.0.1',
        KAFKA_BROKERS: `127.0.0.1:${relayPort}`,
        CDP_TOPIC_PREFIX: prefix,
        CDP_WORKSPACE_FILE: path.join(dir, 'workspace.json'),
        SPOOL_DIR: path.join(dir, 'spool'),
        PUBLISH_TIMEOUT_MS: '500',
        SHUTDOWN_TIMEOUT_MS: '45000',
        LOG_LEVEL: 'warn',
      },
      { captureOutput: true },
    );
    const collectorKafka = createKafka({ brokers: [brokers], clientId: 'tapi-test', logger });
    let collector: EnvelopeCollector | undefined;
    try {
      // Not ready (Kafka does not answer), but it accepts and spools.
      const ids = Array.from({ length: 30 }, (_, i) => `sigterm-${i}`);
      const until = Date.now() + 30_000;
      for (let i = 0; i < ids.length;) {
        const res = await fetch(`http://127.0.0.1:${port}/v1/track`, {
          method: 'POST',
          headers: { Authorization: basicAuth(WRITE_KEY) },
          body: JSON.stringify({ userId: 'u', event: 'E', messageId: ids[i] }),
        }).catch(() => undefined);
        if (res?.status === 200) i++;
        else if (Date.now() > until) throw new Error(`tapi did not accept: ${tapi.output().slice(-2000)}`);
        else await sleep(200);
      }
      const ready = await fetch(`http://127.0.0.1:${tapi.opsPort}/readyz`);
      expect(ready.status).toBe(503);

      await new Promise<void>((resolve) => relay.listen(relayPort, '127.0.0.1', resolve));
      expect(await tapi.stop('SIGTERM')).toBe(0);

      const spool = await Spool.open({ dir: path.join(dir, 'spool'), maxBytes: 1e9, minFreeBytes: 1, logger });
      const left = spool.depth;
      await spool.close();
      expect(left).toBe(0);
      collector = new EnvelopeCollector(collectorKafka, topicNames(prefix).ingest);
      await collector.start();
      await collector.catchUp();
      expect(ids.filter((id) => !collector!.byId.has(id))).toEqual([]);
    } finally {
      await tapi.stop('SIGKILL');
      relay.close();
      await collector?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
