#!/usr/bin/env node
// cdp-replay: starts, follows and controls replays through the archiver's admin API.
import { parseArgs } from 'node:util';
import { err, out, runCli, UsageError } from '@cdp/kafka';
import type { ReplayView } from './replay-store';

const USAGE = `usage (ARCHIVER_ADMIN_URL and ADMIN_TOKEN from the environment):
  cdp-replay start --source <id> --from <ISO time> --to <ISO time> (--destination <id>)... [--force] [--rate <events/s>] [--detach]
  cdp-replay start --undelivered --source <id> --from <ISO time> --to <ISO time> [--destination <id>]... [--rate <events/s>] [--detach]
  cdp-replay list | status <id> | watch <id> | pause <id> | resume <id> | cancel <id>
start and watch show a progress bar with an ETA on stderr until the replay ends (Ctrl-C stops
watching, not the replay); the replay's final state is printed on stdout as JSON. Exit 1 when
it failed or was cancelled.`;

const DONE = new Set(['finished', 'failed', 'cancelled']);

class Api {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const answer = await fetch(new URL(path, this.base), {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await answer.text();
    let parsed: { data?: unknown; error?: { message?: string } } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // not JSON: reported with the status below
    }
    if (!answer.ok) throw new Error(`${method} ${path}: ${answer.status} ${parsed.error?.message ?? text.slice(0, 200)}`);
    return parsed.data;
  }
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mmss = `${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

/** One line of progress: bar, percent, lines, replayed, rate, ETA (from the rate since watching began). */
export function progressLine(view: ReplayView, ratePerSecond: number): string {
  const { scanned, total, replayed, ratio } = view.progress;
  const width = 30;
  const filled = Math.round(ratio * width);
  const eta = ratePerSecond > 0 ? (total - scanned) / ratePerSecond : Infinity;
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(1)}% ` +
    `${scanned}/${total} lines, ${replayed} replayed, ${Math.round(ratePerSecond)}/s, ` +
    `${view.state === 'paused' ? 'paused' : `ETA ${duration(eta)}`}`
  );
}

async function watch(api: Api, id: string): Promise<number> {
  const tty = process.stderr.isTTY;
  const seen: { at: number; scanned: number }[] = [];
  for (;;) {
    const view = (await api.call('GET', `/v1/replays/${id}`)) as ReplayView;
    const now = Date.now();
    seen.push({ at: now, scanned: view.progress.scanned });
    while (seen.length > 2 && now - seen[0].at > 30_000) seen.shift();
    const first = seen[0];
    const rate = now > first.at ? ((view.progress.scanned - first.scanned) * 1000) / (now - first.at) : 0;
    const line = progressLine(view, rate);
    if (tty) process.stderr.write(`\r${line}\x1b[K`);
    else err(line);
    if (DONE.has(view.state)) {
      if (tty) process.stderr.write('\n');
      out(JSON.stringify(view));
      return view.state === 'finished' ? 0 : 1;
    }
    await new Promise((r) => setTimeout(r, tty ? 1_000 : 5_000));
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      source: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      destination: { type: 'string', multiple: true },
      undelivered: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      rate: { type: 'string' },
      detach: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    out(USAGE);
    return 0;
  }
  const base = process.env.ARCHIVER_ADMIN_URL;
  const token = process.env.ADMIN_TOKEN;
  if (!base || !token) throw new UsageError('ARCHIVER_ADMIN_URL and ADMIN_TOKEN must be set (npm start writes them to .stack/env)');
  const api = new Api(base, token);
  const [command, id] = positionals;
  switch (command) {
    case 'start': {
      if (!values.source || !values.from || !values.to) throw new UsageError('start needs --source, --from and --to');
      const rate = values.rate === undefined ? undefined : Number(values.rate);
      if (rate !== undefined && !(Number.isInteger(rate) && rate > 0)) throw new UsageError('--rate must be a positive integer');
      const view = (await api.call('POST', '/v1/replays', {
        sourceId: values.source,
        from: values.from,
        to: values.to,
        kind: values.undelivered ? 'undelivered' : 'raw',
        destinations: values.destination,
        force: values.force,
        ratePerSecond: rate,
      })) as ReplayView;
      err(`replay ${view.id}: ${view.objects} objects, ${view.progress.total} lines, ${view.ratePerSecond} events/s`);
      if (values.detach) {
        out(JSON.stringify(view));
        return 0;
      }
      return watch(api, view.id);
    }
    case 'list':
      for (const view of (await api.call('GET', '/v1/replays')) as ReplayView[]) out(JSON.stringify(view));
      return 0;
    case 'status':
    case 'watch':
    case 'pause':
    case 'resume':
    case 'cancel': {
      if (!id) throw new UsageError(`${command} needs a replay id`);
      if (command === 'watch') return watch(api, id);
      const path = command === 'status' ? `/v1/replays/${id}` : `/v1/replays/${id}/${command}`;
      out(JSON.stringify(await api.call(command === 'status' ? 'GET' : 'POST', path)));
      return 0;
    }
    default:
      throw new UsageError(command ? `unknown command ${command}` : 'a command is needed');
  }
}

if (require.main === module) runCli('cdp-replay', USAGE, main);
