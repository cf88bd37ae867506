import { setTimeout as delay } from 'node:timers/promises';

/**
 * Resolves after `ms`. `unref`: the wait alone does not keep the process alive (a background
 * retry or probe loop that must not hold up an exit).
 */
export function sleep(ms: number, options: { unref?: boolean } = {}): Promise<void> {
  return delay(ms, undefined, { ref: !options.unref });
}
