import type { JobContentRow } from '@cdp/jobdb';
import { jobContent, type JobContent } from './job';
import { contentReads } from './metrics';

interface Waiter {
  resolve(content: JobContent | undefined): void;
  reject(error: unknown): void;
}

/**
 * Reads back the contents of due jobs of one JobDB whose content the memory budget did not
 * keep: the reads asked for in one tick (the jobs one scheduling pass picked) go in one query.
 */
export class ContentReader {
  private waiting = new Map<string, Waiter[]>();
  private scheduled = false;

  constructor(private readonly readRows: (ids: readonly string[]) => Promise<Map<string, JobContentRow>>) {}

  /** The content of `jobId`, undefined when the JobDB has no such job. */
  read(jobId: string): Promise<JobContent | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.waiting.get(jobId);
      if (waiters) waiters.push({ resolve, reject });
      else this.waiting.set(jobId, [{ resolve, reject }]);
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.waiting;
    this.waiting = new Map();
    let rows: Map<string, JobContentRow>;
    try {
      rows = await this.readRows([...batch.keys()]);
    } catch (error) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
      return;
    }
    contentReads.inc(batch.size);
    for (const [id, waiters] of batch) {
      const row = rows.get(id);
      for (const w of waiters) w.resolve(row ? jobContent(row) : undefined);
    }
  }
}
