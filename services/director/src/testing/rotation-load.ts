// Continuous RPC load across JobDB rotations, and the check that every job answered 2xx
// reaches exactly one final state. Used by the director's rotation test; jobdb-manager's
// rotation test reuses it with the manager doing the rotating.
import type mysql from 'mysql2/promise';
import { postJobs, type TestEnv } from './harness';

export interface RotationLoadOptions {
  /** Director RPC URLs; each batch goes to the next one. */
  urls: () => string[];
  /** One rotation (e.g. provision a fresh active JobDB, mark the current one draining); omit when something else rotates. */
  rotate?: () => Promise<void>;
  /** Load runs for `periods` periods of `periodMs`; `rotate` runs at the start of every period after the first. */
  periods: number;
  periodMs: number;
  /** Concurrent posters, each sending its next batch as soon as the previous one is answered. */
  posters: number;
  batchSize: number;
  /** Most batches per poster (a bound on the load whatever the machine's speed). */
  maxBatchesPerPoster: number;
  sourceId: string;
  destinationId: string;
  /** Message id prefix, unique per run. */
  runId: string;
}

export interface RotationLoadResult {
  /** Message ids of every job whose batch was answered 2xx. */
  accepted: string[];
  /** Batches answered otherwise (503 while no JobDB is active, or an insert refused). */
  refusedBatches: number;
  rotations: number;
}

export async function runRotationLoad(options: RotationLoadOptions): Promise<RotationLoadResult> {
  const accepted: string[] = [];
  let refusedBatches = 0;
  let rotations = 0;
  let stopped = false;
  let next = 0;
  let sequence = 0;

  const poster = async (p: number) => {
    for (let b = 0; b < options.maxBatchesPerPoster && !stopped; b++) {
      const urls = options.urls();
      const url = urls[next++ % urls.length];
      const ids = Array.from({ length: options.batchSize }, () => `${options.runId}-${p}-${sequence++}`);
      const jobs = ids.map((messageId) => ({
        sourceId: options.sourceId,
        messageId,
        destinationId: options.destinationId,
        subscriptionId: 'default',
        payload: { type: 'track', messageId, event: 'Rotated' },
      }));
      const res = await postJobs(url, jobs).catch(() => ({ status: 0 }));
      if (res.status >= 200 && res.status < 300) accepted.push(...ids);
      else {
        refusedBatches += 1;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };

  const rotator = async () => {
    for (let period = 0; period < options.periods; period++) {
      if (period > 0 && options.rotate) {
        await options.rotate();
        rotations += 1;
      }
      await new Promise((r) => setTimeout(r, options.periodMs));
    }
    stopped = true;
  };

  await Promise.all([rotator(), ...Array.from({ length: options.posters }, (_, p) => poster(p))]);
  return { accepted, refusedBatches, rotations };
}

export interface FinalStateCheck {
  /** Accepted message ids found in no JobDB. */
  missing: string[];
  /** Accepted message ids whose job has no final state yet. */
  notFinal: string[];
  /** Message ids with more than one final state (or stored more than once). */
  duplicated: string[];
}

/** Where each accepted job stands across `databases` (every JobDB the run used). */
export async function checkFinalStates(env: TestEnv, databases: readonly string[], accepted: readonly string[]): Promise<FinalStateCheck> {
  const finals = new Map<string, number[]>();
  for (const database of databases) {
    const rows = await env.query<mysql.RowDataPacket[]>(
      database,
      `SELECT j.message_id, (SELECT COUNT(*) FROM job_state_transitions t WHERE t.job_id = j.id AND t.to_state IN ('succeeded', 'discarded', 'archived')) AS finals
         FROM jobs j`,
    );
    for (const r of rows) {
      const id = String(r.message_id);
      finals.set(id, [...(finals.get(id) ?? []), Number(r.finals)]);
    }
  }
  const result: FinalStateCheck = { missing: [], notFinal: [], duplicated: [] };
  for (const id of accepted) {
    const counts = finals.get(id);
    if (!counts) result.missing.push(id);
    else if (counts.length > 1 || counts[0] > 1) result.duplicated.push(id);
    else if (counts[0] === 0) result.notFinal.push(id);
  }
  return result;
}
