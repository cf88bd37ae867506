// The offered load of the fairness tests, in its own process (tests fork
// dist/testing/load-process.js) as transform's calls come from other pods: building and sending
// the RPC batches must not run on the director's event loop it is measuring. The parent sends
// { url, streams, seconds, tag }; the process answers { done: true } once every batch was
// answered 200, or { error }.

export interface LoadStream {
  sourceId: string;
  destinationId: string;
  perSecond: number;
}

export interface LoadRequest {
  url: string;
  streams: LoadStream[];
  seconds: number;
  tag: string;
}

let seq = 0;

/** Offers `perSecond` jobs per stream for `seconds`, one RPC batch per stream 20 times a second. */
async function offer({ url, streams, seconds, tag }: LoadRequest): Promise<void> {
  const ticks = seconds * 20;
  const posts: Array<Promise<void>> = [];
  const start = Date.now();
  for (let t = 0; t < ticks; t++) {
    for (const s of streams) {
      const jobs = Array.from({ length: Math.round(s.perSecond / 20) }, () => {
        seq += 1;
        return {
          sourceId: s.sourceId,
          messageId: `${tag}-${seq}`,
          destinationId: s.destinationId,
          subscriptionId: 'default',
          payload: { type: 'track', messageId: `${tag}-${seq}`, event: 'E', properties: { sentAt: Date.now(), tag, source: s.sourceId } },
        };
      });
      posts.push(
        fetch(`${url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jobs }) }).then(async (res) => {
          await res.text();
          if (res.status !== 200) throw new Error(`RPC answered ${res.status}`);
        }),
      );
    }
    const next = start + (t + 1) * 50;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await Promise.all(posts);
}

process.on('message', (msg: LoadRequest | 'stop') => {
  if (msg === 'stop') process.exit(0);
  offer(msg).then(
    () => process.send?.({ done: true }),
    (error: Error) => process.send?.({ error: error.message }),
  );
});
process.send?.({ ready: true });
