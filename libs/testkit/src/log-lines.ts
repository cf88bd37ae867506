// Reading the JSON log lines (pino, via libs/log) a service process wrote, for assertions.

export interface LogLine {
  level: string;
  msg: string;
  time?: string | number;
  /** libs/log's errorFields. */
  err?: { message: string; name?: string; code?: string; stack?: string };
  [field: string]: unknown;
}

/**
 * Every line of `text` that is a JSON object, parsed, in order; other lines (what a crash
 * printed, a line cut off mid-write) are passed over.
 */
export function logLines(text: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) lines.push(parsed as LogLine);
    } catch {
      // not a whole JSON line
    }
  }
  return lines;
}
