import fs from 'node:fs';
import type { Logger } from '@cdp/log';
import type { ForceMode } from './publisher';

/**
 * The operator's runtime switch, a small JSON file (a ConfigMap key) re-read every interval:
 * `{"cluster": "auto" | "primary" | "secondary"}`. A missing file means auto; an invalid one is
 * logged and the last good value kept, like the workspace file.
 */
export function parseRuntimeConfig(text: string): { cluster: ForceMode } {
  const json = JSON.parse(text) as { cluster?: unknown };
  const cluster = json.cluster ?? 'auto';
  if (cluster !== 'auto' && cluster !== 'primary' && cluster !== 'secondary') {
    throw new Error(`cluster must be auto, primary or secondary`);
  }
  return { cluster };
}

export function watchRuntimeConfig(file: string, intervalMs: number, logger: Logger, apply: (mode: ForceMode) => void): () => void {
  let last = '';
  const read = () => {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      text = '{}';
    }
    if (text === last) return;
    try {
      const cfg = parseRuntimeConfig(text);
      last = text;
      apply(cfg.cluster);
    } catch (error) {
      if (text !== last)
        logger.warn({ file, err: { message: (error as Error).message } }, 'runtime config rejected; keeping the previous one');
      last = text;
    }
  };
  read();
  const timer = setInterval(read, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
