// The local stack's sample sink: the sample workspace's webhook destinations point at it. It
// answers 200 to every request and appends each one to a file as one JSON line
// `{ method, path, headers, body, at }` (body parsed when it is JSON, else the text), so a user (or
// an end-to-end test) sees what was delivered. Routes of the HttpSink answer otherwise (an
// outage in a test).
import fs from 'node:fs';
import path from 'node:path';
import { HttpSink, type SinkRequest } from './http-sink';

/** One line of the sink's file. */
export interface SinkLine {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** When it arrived (ms since the epoch, the sink's clock). */
  at: number;
}

export function sinkLine(req: SinkRequest): SinkLine {
  let body: unknown = req.body;
  if (String(req.headers['content-type'] ?? '').includes('json')) {
    try {
      body = JSON.parse(req.body);
    } catch {
      // Not JSON after all: the text as received.
    }
  }
  return { method: req.method, path: req.path, headers: req.headers, body, at: req.at };
}

/**
 * Appends lines to a file without blocking the event loop: the lines that arrive while a write is
 * under way go together in the next one (one write per turn, not per line). `append` resolves once
 * the line is in the file.
 */
export class LineAppender {
  private pending: string[] = [];
  private waiting: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private writing = false;

  constructor(private readonly file: string) {}

  append(line: string): Promise<void> {
    this.pending.push(line);
    const done = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (!this.writing) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const lines = this.pending;
      const waiting = this.waiting;
      this.pending = [];
      this.waiting = [];
      try {
        await fs.promises.appendFile(this.file, lines.join(''));
        for (const w of waiting) w.resolve();
      } catch (error) {
        for (const w of waiting) w.reject(error);
      }
    }
    this.writing = false;
  }
}

/** Starts the sink on 127.0.0.1:`port` (0: a free one), appending to `file` (its folder is created). */
export async function startSampleSink(file: string, port = 0): Promise<HttpSink> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const appender = new LineAppender(file);
  // A request is answered once its line is in the file (a reader that saw the answer finds the line).
  return new HttpSink({ keep: false, port, onRequest: (req) => appender.append(`${JSON.stringify(sinkLine(req))}\n`) }).start();
}

/** The lines of a sink file written so far (none when it does not exist yet). */
export function readSinkLines(file: string): SinkLine[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  // The last piece is '' after a complete line, or a line still being written: left for later.
  return lines.slice(0, -1).map((l) => JSON.parse(l) as SinkLine);
}
