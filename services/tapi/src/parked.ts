import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '@cdp/log';
import { setParkedSource, spoolParked } from './metrics';
import type { SpoolRecord } from './spool';

/** A spooled record Kafka refused for good, kept aside for an operator. */
export interface ParkedRecord {
  /** `<spool entry id>-<index in the entry>`: sorts in arrival order, the same on a re-park. */
  id: string;
  parkedAt: string;
  /** Kafka's error type, e.g. MESSAGE_TOO_LARGE. */
  reason: string;
  error: string;
  record: SpoolRecord;
}

/**
 * Records the drainer could not deliver because Kafka refuses them (not because it is down),
 * one fsynced JSON file each under `<SPOOL_DIR>/parked/` (same volume as the spool; LevelDB
 * ignores the folder). They leave the spool's queue so the records behind them flow; the
 * `spool parked` commands list, re-send or discard them. Other processes (those commands) may
 * change the folder while tapi runs: nothing is cached.
 */
export class ParkedRecords {
  readonly dir: string;

  constructor(
    spoolDir: string,
    private readonly logger: Logger,
  ) {
    this.dir = path.join(spoolDir, 'parked');
  }

  /** Also makes this folder the one the parked-records gauges report. */
  static forService(spoolDir: string, logger: Logger): ParkedRecords {
    const parked = new ParkedRecords(spoolDir, logger);
    setParkedSource(() => parked.stats());
    return parked;
  }

  /** Durable before it resolves: the caller then deletes the record from the spool. */
  async park(id: string, record: SpoolRecord, reason: string, error: string): Promise<void> {
    await fs.promises.mkdir(this.dir, { recursive: true });
    const entry: ParkedRecord = { id, parkedAt: new Date().toISOString(), reason, error, record };
    const file = this.file(id);
    const tmp = `${file}.tmp`;
    const handle = await fs.promises.open(tmp, 'w');
    try {
      await handle.writeFile(JSON.stringify(entry));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.promises.rename(tmp, file);
    await syncDir(this.dir);
    spoolParked.labels(reason).inc();
    this.logger.warn(
      { id, reason, error, key: record.key, bytes: record.value.length },
      'record parked: kafka refuses it; see `cli.js spool parked`',
    );
  }

  /** Every parked record, oldest first. */
  list(): ParkedRecord[] {
    return this.names().map((name) => JSON.parse(fs.readFileSync(path.join(this.dir, name), 'utf8')) as ParkedRecord);
  }

  get(id: string): ParkedRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file(id), 'utf8')) as ParkedRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async remove(id: string): Promise<void> {
    await fs.promises.rm(this.file(id), { force: true });
    await syncDir(this.dir);
  }

  stats(): { records: number; bytes: number } {
    let bytes = 0;
    const names = this.names();
    for (const name of names) bytes += fs.statSync(path.join(this.dir, name), { throwIfNoEntry: false })?.size ?? 0;
    return { records: names.length, bytes };
  }

  private names(): string[] {
    if (!fs.existsSync(this.dir)) return [];
    return fs
      .readdirSync(this.dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  }

  private file(id: string): string {
    if (!/^[0-9]+-[0-9]+$/.test(id)) throw new Error(`not a parked record id: ${id}`);
    return path.join(this.dir, `${id}.json`);
  }
}

/** fsync a directory so a rename or unlink in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
