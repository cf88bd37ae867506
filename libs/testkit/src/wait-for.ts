import { sleep } from '@cdp/lifecycle';

/**
 * Resolves once `check` is true, polling every `stepMs`; throws after `timeoutMs` (a liveness
 * bound only: tests order events by what they observe, never by how long something took).
 */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs = 20_000, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}
