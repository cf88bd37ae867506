/**
 * The request of issue 16: a /v1/batch just under MAX_BATCH_BYTES whose batch-level `context`
 * (380 KB) is merged into each of 1,300 tiny events, so that each envelope would be ~380 KB and
 * the request ~500 MB once expanded. Used by the amplification test and by bench:tapi.
 */
export function expandingBatch(idPrefix: string, options: { contextBytes?: number; events?: number } = {}): string {
  const contextBytes = options.contextBytes ?? 380_000;
  const events = options.events ?? 1_300;
  return JSON.stringify({
    context: { page: { title: 'x'.repeat(contextBytes) } },
    batch: Array.from({ length: events }, (_, i) => ({ type: 'track', event: 'E', userId: 'u', messageId: `${idPrefix}-${i}` })),
  });
}
