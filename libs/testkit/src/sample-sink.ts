// The local stack's sample sink: the sample workspace's webhook destinations point at it. It
// answers 200 to every request and appends each one to a file as one JSON line
// `{ method, path, headers, body }` (body parsed when it is JSON, else the text), so a user (or
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
  return { method: req.method, path: req.path, headers: req.headers, body };
}

/** Starts the sink on 127.0.0.1:`port` (0: a free one), appending to `file` (its folder is created). */
export async function startSampleSink(file: string, port = 0): Promise<HttpSink> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Appended synchronously, so a line is in the file before the request is answered.
  return new HttpSink({ keep: false, port, onRequest: (req) => fs.appendFileSync(file, `${JSON.stringify(sinkLine(req))}\n`) }).start();
}

/** The lines of a sink file written so far (none when it does not exist yet). */
export function readSinkLines(file: string): SinkLine[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  // The last piece is '' after a complete line, or a line still being written: left for later.
  return lines.slice(0, -1).map((l) => JSON.parse(l) as SinkLine);
}
