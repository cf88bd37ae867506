// Replay through the whole pipeline: events delivered live to the sample workspace's `hook`; a
// destination added afterwards (`late`, a webhook to the sink); a replay of the archived
// history to `late` only, through the archiver's admin API. `late` receives every event once,
// `hook` nothing again.
import crypto from 'node:crypto';
import { listKeys, readObjectLines } from '@cdp/archiver/src/reader';
import { sleep, waitFor, type SinkLine } from '@cdp/testkit';
import { CHAIN_ADMIN_TOKEN, PIPELINE, startChain, type Chain } from './testing/chain';

const EVENTS = 40;

function messageIds(path: string, lines: SinkLine[], run: string): string[] {
  return lines
    .filter((l) => l.path === path)
    .map((l) => (l.body as { messageId: string }).messageId)
    .filter((id) => id.includes(run));
}

describe('replay from the archive to a destination added later (every service a process)', () => {
  let chain: Chain;
  beforeAll(async () => {
    chain = await startChain(PIPELINE, { label: 'e2e_replay', partitions: 2 });
  });
  afterAll(() => chain?.stop());

  it('delivers live to hook; after adding late, a replay to late delivers the history there once and nowhere else', async () => {
    const run = crypto.randomBytes(3).toString('hex');
    const from = new Date(Date.now() - 60_000).toISOString();
    const batch = Array.from({ length: EVENTS }, (_, i) => ({
      type: 'track',
      messageId: `replay-${run}-${i}`,
      userId: `replay-user-${run}`,
      event: 'Order Completed',
      properties: { orderId: `o-${i}` },
    }));
    const answer = await fetch(`${chain.members.tapi!.url}/v1/batch`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Basic ${Buffer.from('wk_server_sample_0001:').toString('base64')}` },
      body: JSON.stringify({ batch }),
    });
    expect(answer.status).toBe(200);
    await waitFor(() => messageIds('/hook', chain.sinkLines(), run).length >= EVENTS, 120_000, 250);

    // The raw history is archived (1 s flushes in the chain) before the replay lists its objects.
    const archived = new Set<string>();
    await waitFor(
      async () => {
        for (const key of await listKeys(chain.s3.client, chain.s3.bucket, '')) {
          if (!key.includes('/raw/server/')) continue;
          for (const line of await readObjectLines(chain.s3.client, chain.s3.bucket, key)) {
            const id = (JSON.parse(line) as { messageId: string }).messageId;
            if (id.includes(run)) archived.add(id);
          }
        }
        return archived.size >= EVENTS;
      },
      90_000,
      1_000,
    );

    // A new destination, connected to the server source; the services pick the file up while running.
    const sinkOrigin = new URL(chain.sink.url).origin;
    chain.updateWorkspace((text) => {
      const edited = text
        .replace(
          /^destinations:\n/m,
          `destinations:\n  - id: late\n    name: Added later\n    type: webhook\n    settings:\n      url: ${sinkOrigin}/late\n\n`,
        )
        .replace(/^connections:\n/m, 'connections:\n  - { sourceId: server, destinationId: late }\n');
      expect(edited).not.toBe(text);
      return edited;
    });
    await sleep(8_000); // WORKSPACE_POLL_INTERVAL_MS is 2 s: every service has the new version

    const hookBefore = messageIds('/hook', chain.sinkLines(), run).length;
    const created = await fetch(`${chain.members.archiver!.adminUrl}/v1/replays`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${CHAIN_ADMIN_TOKEN}` },
      body: JSON.stringify({ sourceId: 'server', from, to: new Date(Date.now() + 1_000).toISOString(), destinations: ['late'] }),
    });
    expect(created.status).toBe(201);
    const { data } = (await created.json()) as { data: { id: string } };
    await waitFor(
      async () => {
        const res = await fetch(`${chain.members.archiver!.adminUrl}/v1/replays/${data.id}`, {
          headers: { Authorization: `Bearer ${CHAIN_ADMIN_TOKEN}` },
        });
        return ((await res.json()) as { data: { state: string } }).data.state === 'finished';
      },
      60_000,
      500,
    );
    await waitFor(() => messageIds('/late', chain.sinkLines(), run).length >= EVENTS, 120_000, 250);
    await sleep(3_000); // a late duplicate would show by now

    const lines = chain.sinkLines();
    const late = messageIds('/late', lines, run);
    expect(late.sort()).toEqual(batch.map((e) => e.messageId).sort());
    expect(messageIds('/hook', lines, run)).toHaveLength(hookBefore);
    expect(messageIds('/audit', lines, run)).toHaveLength(0); // audit is connected to web only
  });
});
