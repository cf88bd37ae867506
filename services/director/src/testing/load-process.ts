// One client of the fairness tests' offered load, in its own process (tests fork
// dist/testing/load-process.js once per stream), as transform's calls come from other pods:
// building and sending one source's RPC batches must neither run on the director's event loop
// it is measuring nor queue another source's batches behind its own. The parent sends
// { url, stream, seconds, tag }; the process answers { done: true } once every batch was
// answered 200, or { error }.
import { Pool } from 'undici';
import { bearer, RPC_AUTH_HEADER, RPC_JOBS_PATH } from '@cdp/director-rpc';

export interface LoadStream {
  sourceId: string;
  destinationId: string;
  perSecond: number;
}

export interface LoadRequest {
  url: string;
  stream: LoadStream;
  seconds: number;
  tag: string;
  /** The director's RPC token. */
  token: string;
}

let seq = 0;
let pool: Pool | undefined;

/**
 * One RPC batch, sent again after 50 ms on a 503 (at most 20 times), as transform's client
 * tries again: on the loaded test machine MariaDB or the Consul session has slow moments.
 * The jobs keep their `sentAt`, so the wait counts in their latency.
 */
async function post(url: string, token: string, body: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const res = await pool!.request({
      path: RPC_JOBS_PATH,
      method: 'POST',
      headers: { 'content-type': 'application/json', [RPC_AUTH_HEADER]: bearer(token) },
      body,
    });
    await res.body.text();
    if (res.statusCode === 200) return;
    if (res.statusCode !== 503 || attempt >= 20) throw new Error(`RPC answered ${res.statusCode} to ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Offers `perSecond` jobs for `seconds`, one RPC batch 20 times a second. */
async function offer({ url, stream, seconds, tag, token }: LoadRequest): Promise<void> {
  pool ??= new Pool(url, { connections: 16 });
  const ticks = seconds * 20;
  const posts: Array<Promise<void>> = [];
  let failure: Error | undefined;
  const start = Date.now();
  for (let t = 0; t < ticks; t++) {
    const jobs = Array.from({ length: Math.round(stream.perSecond / 20) }, () => {
      seq += 1;
      return {
        sourceId: stream.sourceId,
        messageId: `${tag}-${process.pid}-${seq}`,
        destinationId: stream.destinationId,
        subscriptionId: 'default',
        payload: {
          type: 'track',
          messageId: `${tag}-${process.pid}-${seq}`,
          event: 'E',
          properties: { sentAt: Date.now(), tag, source: stream.sourceId },
        },
      };
    });
    posts.push(
      post(url, token, JSON.stringify({ jobs }))
        // Awaited after the last batch: handled now, so a failed batch is reported, not a crash.
        .catch((error: unknown) => {
          failure ??= error as Error;
        }),
    );
    const next = start + (t + 1) * 50;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await Promise.all(posts);
  if (failure) throw failure;
}

process.on('message', (msg: LoadRequest | 'stop') => {
  if (msg === 'stop') process.exit(0);
  offer(msg).then(
    () => process.send?.({ done: true }),
    (error: Error) => process.send?.({ error: error.message }),
  );
});
process.send?.({ ready: true });
