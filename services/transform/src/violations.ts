import type { Violation } from './plan';

/** One violation as the admin API shows it: which event, where, what rule; never the value. */
export interface ViolationSample extends Violation {
  at: string;
  sourceId: string;
  planId: string;
  messageId: string;
  type: string;
  /** The event as counted: a planned track event's name, `(unplanned)`, `(identify)`, ... */
  event: string;
}

/**
 * The latest violations per source, in memory (per process: each replica keeps its own), for
 * the admin API. Bounded: `perSource` samples per source, oldest dropped first.
 */
export class ViolationSamples {
  private readonly bySource = new Map<string, ViolationSample[]>();

  constructor(private readonly perSource = 100) {}

  add(sample: ViolationSample): void {
    let list = this.bySource.get(sample.sourceId);
    if (!list) this.bySource.set(sample.sourceId, (list = []));
    list.push(sample);
    if (list.length > this.perSource) list.splice(0, list.length - this.perSource);
  }

  /** Newest first; one source, or every source. */
  list(sourceId?: string, limit = this.perSource): ViolationSample[] {
    const lists = sourceId !== undefined ? [this.bySource.get(sourceId) ?? []] : [...this.bySource.values()];
    return lists
      .flat()
      .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
      .slice(0, limit);
  }
}
