import { z } from 'zod';

/**
 * The director RPC contract (DESIGN.md "Director RPC"), shared by the director (server) and
 * its callers (transform, through the RPC client), so both sides parse the same shapes.
 */

/** Path of the batch endpoint on a director's RPC port. */
export const RPC_JOBS_PATH = '/v1/jobs';

/**
 * Every call carries `Authorization: Bearer <DIRECTOR_RPC_TOKEN>`; directors answer 401
 * to anything else.
 */
export const RPC_AUTH_HEADER = 'authorization';
export const RPC_TOKEN_ENV = 'DIRECTOR_RPC_TOKEN';

/** The `Authorization` header value for a token. */
export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** The token of an `Authorization: Bearer <token>` value, or undefined for anything else. */
export function tokenOf(authorization: string | undefined): string | undefined {
  const match = /^Bearer ([^\s]+)$/i.exec(authorization ?? '');
  return match?.[1];
}

/**
 * Headers a job can never set, whatever a director's allow-list says: they would redirect the
 * request (`host`), break its framing (`content-length`, `transfer-encoding`, `connection`, …),
 * or forge what the director or the destination's settings add (`authorization`,
 * `x-signature`: the HMAC of the body).
 */
export const FORBIDDEN_JOB_HEADERS: readonly string[] = [
  'host',
  'authorization',
  'proxy-authorization',
  'cookie',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'x-signature',
];

/**
 * Headers a job may set unless a director is configured otherwise (`DIRECTOR_RPC_ALLOWED_HEADERS`):
 * exact lower-case names, or a prefix ending in `*`.
 */
export const DEFAULT_ALLOWED_JOB_HEADERS: readonly string[] = ['content-type', 'x-cdp-*'];

const ID = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * One job of `POST /v1/jobs` (transform → director). The idempotency key is
 * (sourceId, messageId, destinationId, subscriptionId), plus `replayId` on a forced replay.
 */
export const rpcJobSchema = z.strictObject({
  sourceId: ID,
  messageId: z.string().min(1).max(255),
  destinationId: ID,
  subscriptionId: ID,
  /**
   * Set by transform for a forced replay (`replay.force`): part of the idempotency key, so
   * history is delivered again on purpose even where the original job is still stored.
   */
  replayId: z.string().min(1).max(255).optional(),
  /**
   * The Segment event as transform routed it, for every destination type: a webhook sends it as
   * the body; an action destination's mapping (the job's subscription) is applied by the director.
   */
  // The batch arrives as JSON, so whatever is here is JSON already: only presence is checked
  // (z.json() walked every payload: a sixth of a loaded director's allocations).
  payload: z.custom<JsonValue>((value) => value !== undefined, 'required'),
  headers: z
    .record(
      z.string().regex(HEADER_NAME),
      z
        .string()
        .max(8192)
        .refine((v) => !/[\r\n]/.test(v), 'must not contain line breaks'),
    )
    .default({}),
  /** When the pipeline received the event; defaults to now. */
  receivedAt: z.iso.datetime({ offset: true }).optional(),
  /** When retrying stops; defaults to receivedAt + the destination's retry window (4 h). */
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

export const rpcBatchSchema = z.strictObject({ jobs: z.array(rpcJobSchema).min(1) });
/** A job as the director sees it after parsing (headers defaulted). */
export type RpcJob = z.infer<typeof rpcJobSchema>;
export type RpcBatch = z.infer<typeof rpcBatchSchema>;
/** A job as a caller sends it (headers optional). */
export type RpcJobInput = z.input<typeof rpcJobSchema>;
export type RpcBatchInput = z.input<typeof rpcBatchSchema>;

export type RpcJobStatus = 'stored' | 'duplicate' | 'rejected';

/** The outcome of one job, `index` being its position in the batch. */
export interface RpcJobResult {
  index: number;
  status: RpcJobStatus;
  /** Why a job was rejected; only on `rejected`. */
  error?: string;
}

/** The 200 answer to `POST /v1/jobs`: counts plus one result per job, in batch order. */
export interface RpcAnswer {
  accepted: number;
  stored: number;
  duplicates: number;
  rejected: number;
  results: RpcJobResult[];
}

/** Body of every non-200 answer (400, 401, 413, 503): `{ error: { code, message } }`. */
export interface RpcErrorBody {
  error: { code: string; message: string };
}

/**
 * GDPR deletions (DESIGN.md "Regulations"): a job with this subscription id is not an event but
 * a request to delete one user at one destination, for one regulation. Transform sends one per
 * delete regulation record (DELETE_ONLY, SUPPRESS_WITH_DELETE) and action destination; the
 * director runs the definition's delete handler (nothing for a definition without one), and
 * reports the destination's part of the regulation on cdp.regulation-status once the jobs of
 * all its `subjects` are final (stage `destination.<destinationId>`, @cdp/events' deletionStage).
 */
export const DELETE_SUBSCRIPTION_ID = '__delete';

export const deletionPayloadSchema = z.strictObject({
  type: z.literal('delete'),
  regulationId: z.string().min(1).max(64),
  spaceId: z.string().min(1),
  userId: z.string().min(1),
  /** The regulation's records (spaces × users): the destination's part is done once that many jobs are final. */
  subjects: z.number().int().positive().optional(),
  /**
   * False when the user's space has no source connected to the destination: the job is counted
   * for the regulation, and nothing is sent (the same id in another space may be another person).
   */
  connected: z.boolean(),
});
export type DeletionPayload = z.infer<typeof deletionPayloadSchema>;
