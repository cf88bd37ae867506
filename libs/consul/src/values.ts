import { z } from 'zod';

/**
 * Schemas of the JSON values stored under the keys of `ConsulKeys`. Objects are loose: a
 * newer writer's extra fields pass through an older reader (and are kept when it rewrites).
 */

/** Lifecycle states of a JobDB (DESIGN.md "JobDB lifecycle"). */
export const JOBDB_STATES = ['active', 'draining', 'drained'] as const;
export type JobDbState = (typeof JOBDB_STATES)[number];

/** `<prefix>jobdbs/<id>`, written by jobdb-manager (provisioning); the holder writes `drained`. */
export const jobDbRecordSchema = z.looseObject({
  state: z.enum(JOBDB_STATES),
  /** The database's name on the server of the reader's own MYSQL_URL: credentials never go to Consul. */
  dsnRef: z.string().min(1),
  createdAt: z.string().min(1),
});
export type JobDbRecord = z.infer<typeof jobDbRecordSchema>;

/** `<prefix>jobdbs/<id>/lock` and `<prefix>leader/<service>`: who holds it (for people reading KV). */
export const lockHolderSchema = z.looseObject({ pod: z.string().min(1) });
export type LockHolder = z.infer<typeof lockHolderSchema>;

/** `<prefix>destinations/<id>/control`: "change QoS with one write", followed by every director. */
export const destinationControlSchema = z.looseObject({
  paused: z.boolean().optional(),
  priority: z.number().int().min(-100).max(100).optional(),
  /** Requests per second for this destination on each director; overrides the workspace limit. */
  rateLimitPerSecond: z.number().positive().optional(),
});
export type DestinationControl = z.infer<typeof destinationControlSchema>;

/**
 * Parses a KV value as JSON and validates it. Throws an Error whose message names each bad
 * field (and never echoes the value).
 */
export function parseKvJson<S extends z.ZodType>(schema: S, text: string | null): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text ?? '');
  } catch {
    throw new Error(text === null || text === '' ? 'empty value (want JSON)' : 'not valid JSON');
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new Error(result.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(value)'}: ${i.message}`).join('; '));
}
