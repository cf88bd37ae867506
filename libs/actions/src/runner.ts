// Runs one action destination of a workspace: the definition's actions with the subscription's
// effective mapping, one event (`perform`) or a batch (`performBatch`), OAuth tokens refreshed
// on 401 as the library does it, every outcome turned into a status the caller classifies.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Agent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { createRequestClient, Destination, type DestinationDefinition, type JSONObject, type SegmentEvent } from '@segment/actions-core';
import { registerSecret } from '@cdp/log';
import type { Destination as WorkspaceDestination } from '@cdp/workspace';
import { definitionSettings, effectiveMapping, OAUTH_SETTING, usesOAuth, type OAuthSettings } from './config';
import { loadDefinition } from './registry';

/** What one event's delivery came to. */
export type ActionOutcome =
  /** A status: the partner's HTTP status, or the library's for its own errors (400 invalid payload, 401, 5xx…). */
  | { kind: 'response'; status: number; retryAfter: string | null; excerpt: string }
  /** No answer: network failure or timeout (`error` as thrown, for the caller to classify). */
  | { kind: 'error'; error: unknown };

/** Access tokens of OAuth destinations, kept in memory (per director) across workspace reloads. */
export class TokenStore {
  private readonly tokens = new Map<string, { refreshToken: string; accessToken: string }>();
  private readonly refreshing = new Map<string, Promise<string>>();

  /** The access token last obtained for this destination with this refresh token. */
  get(destinationId: string, refreshToken: string): string | undefined {
    const entry = this.tokens.get(destinationId);
    return entry?.refreshToken === refreshToken ? entry.accessToken : undefined;
  }

  /** One refresh at a time per destination: concurrent 401s wait for the same new token. */
  refresh(destinationId: string, refreshToken: string, fetch: () => Promise<string>): Promise<string> {
    let pending = this.refreshing.get(destinationId);
    if (!pending) {
      pending = fetch()
        .then((accessToken) => {
          registerSecret(accessToken); // masked in every log line, like the configured secrets
          this.tokens.set(destinationId, { refreshToken, accessToken });
          return accessToken;
        })
        .finally(() => this.refreshing.delete(destinationId));
      this.refreshing.set(destinationId, pending);
    }
    return pending;
  }
}

export interface RunnerOptions {
  /** Connection pool for the partner's origin (a function, as node-fetch 2 takes it). */
  agent: (url: URL) => Agent;
  /** Request timeout unless the definition sets its own. */
  timeoutMs: number;
  tokens: TokenStore;
}

interface PreparedSubscription {
  action: string;
  mapping: JSONObject;
  /** Events per performBatch call; undefined when the action is run one event at a time. */
  batchSize: number | undefined;
}

const EXCERPT_CHARS = 1024;
/** Events per batch when the mapping sets no `batch_size`. */
const DEFAULT_BATCH_SIZE = 100;

/**
 * Feature flags passed to performBatch. `mixpanel-multistatus`: Mixpanel's trackEvent and
 * trackPurchase read the partner's per-record answer (`failed_records`) instead of throwing for
 * the whole batch. Not passed to perform: with it a single event's failure would come back as a
 * result, not an error.
 */
const BATCH_FEATURES = { 'mixpanel-multistatus': true };

/** The partner's last answer within one call (per-event results carry no headers). */
interface LastAnswer {
  status?: number;
  retryAfter: string | null;
  body?: unknown;
}
const lastAnswer = new AsyncLocalStorage<LastAnswer>();
const isRetryable = (status: number) => status === 408 || status === 429 || status >= 500;

/** The library's Destination with its single-event entry point reachable (transform already matched the subscription). */
class RunnableDestination extends Destination<JSONObject> {
  run(action: string, input: Parameters<Destination<JSONObject>['executeAction']>[1]) {
    return this.executeAction(action, input);
  }
}

function statusOf(error: unknown): number | undefined {
  const e = error as { status?: unknown; response?: { status?: unknown }; name?: string } | null;
  if (typeof e?.response?.status === 'number') return e.response.status;
  if (typeof e?.status === 'number') return e.status;
  if (e?.name === 'AggregateAjvError' || e?.name === 'ValidationError') return 400;
  return undefined;
}

/** A thrown error as an outcome (the library throws for every non-2xx answer and its own failures). */
export function outcomeOfError(error: unknown): ActionOutcome {
  const e = error as { name?: string; code?: string; message?: string; response?: { headers?: Headers; content?: unknown } } | null;
  if (/timeout/i.test(e?.name ?? '') || /TIMEOUT|TIMEDOUT/.test(e?.code ?? '')) return { kind: 'error', error };
  const status = statusOf(error);
  if (status === undefined) {
    // A failure without an answer (refused, reset, DNS: node-fetch's FetchError has the code).
    if (typeof e?.code === 'string' && /^E[A-Z]+/.test(e.code)) return { kind: 'error', error };
    // Anything else the definition threw: Segment's handleError counts it as a 500.
    return {
      kind: 'response',
      status: 500,
      retryAfter: null,
      excerpt: `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`.slice(0, EXCERPT_CHARS),
    };
  }
  const body = e?.response?.content;
  const excerpt = typeof body === 'string' && body !== '' ? body : `${e?.name ?? 'Error'}: ${e?.message ?? ''}`;
  return {
    kind: 'response',
    status,
    retryAfter: e?.response?.headers?.get?.('retry-after') ?? null,
    excerpt: excerpt.slice(0, EXCERPT_CHARS),
  };
}

/**
 * A thrown error as an outcome, where the partner's answer decides when the definition failed on
 * a non-2xx answer it could not read (e.g. Mixpanel's multistatus code reading a plain-text 503).
 */
function outcomeWithAnswer(error: unknown, answer: LastAnswer): ActionOutcome {
  const outcome = outcomeOfError(error);
  const status = answer.status;
  if (status === undefined || (status >= 200 && status < 300) || statusOf(error) !== undefined) return outcome;
  if (outcome.kind === 'error') return outcome; // timeout or network failure after an earlier answer
  return { kind: 'response', status, retryAfter: answer.retryAfter, excerpt: excerptOf(answer.body) || outcome.excerpt };
}

function excerptOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  return (typeof value === 'string' ? value : JSON.stringify(value)).slice(0, EXCERPT_CHARS);
}

/** One action destination of one workspace version, ready to run. */
export class ActionDestinationRunner {
  readonly definition: DestinationDefinition<unknown>;
  private readonly destination: RunnableDestination;
  private readonly settings: JSONObject;
  private readonly oauth: OAuthSettings | undefined;
  private readonly subscriptions = new Map<string, PreparedSubscription>();

  constructor(
    private readonly config: WorkspaceDestination,
    private readonly options: RunnerOptions,
  ) {
    const definition = loadDefinition(config.type);
    if (!definition) throw new Error(`unknown action destination type ${config.type}`);
    this.definition = definition;
    const extend = definition.extendRequest;
    // Every request of this destination goes through the director's pool and timeout (a signal
    // turns the library's own default timeout off).
    this.destination = new RunnableDestination({
      ...(definition as DestinationDefinition<JSONObject>),
      extendRequest: (data) => {
        const base = extend?.(data as never) ?? {};
        // node-fetch 2 takes a function for `agent`; the library's types only know the Agent.
        return {
          timeout: options.timeoutMs,
          ...base,
          agent: base.agent ?? (options.agent as unknown as HttpsAgent),
          // Appended to the library's hooks (arrays are concatenated by the request client).
          afterResponse: [
            (_request: unknown, _options: unknown, response: Response & { content?: unknown }) => {
              const answer = lastAnswer.getStore();
              if (answer)
                Object.assign(answer, { status: response.status, retryAfter: response.headers.get('retry-after'), body: response.content });
            },
          ],
        };
      },
    });
    const settings = config.settings as Record<string, unknown>;
    this.settings = definitionSettings(settings) as JSONObject;
    this.oauth = usesOAuth(definition) ? (settings[OAUTH_SETTING] as OAuthSettings) : undefined;
    for (const s of config.subscriptions) {
      const action = definition.actions[s.action ?? ''];
      if (!action) continue;
      const mapping = effectiveMapping(action, s.mapping as Record<string, unknown>);
      const batching = typeof action.performBatch === 'function' && mapping.enable_batching === true;
      const size = Number(mapping.batch_size);
      this.subscriptions.set(s.id, {
        action: s.action!,
        mapping: mapping as JSONObject,
        batchSize: batching ? (Number.isInteger(size) && size > 0 ? size : DEFAULT_BATCH_SIZE) : undefined,
      });
    }
  }

  hasSubscription(id: string): boolean {
    return this.subscriptions.has(id);
  }

  /** Events per performBatch call for this subscription; undefined when it runs per event. */
  batchSize(subscriptionId: string): number | undefined {
    return this.subscriptions.get(subscriptionId)?.batchSize;
  }

  /** `perform` for one event. */
  async perform(subscriptionId: string, event: SegmentEvent, signal?: AbortSignal): Promise<ActionOutcome> {
    const sub = this.subscription(subscriptionId);
    const once = async (accessToken: string | undefined): Promise<ActionOutcome> => {
      try {
        const results = await this.destination.run(sub.action, {
          event,
          mapping: sub.mapping,
          settings: this.settings,
          auth: this.auth(accessToken),
          signal,
        });
        const executed = results.find((r) => r.output === 'Action Executed');
        return { kind: 'response', status: 200, retryAfter: null, excerpt: excerptOf(executed?.data) };
      } catch (error) {
        return outcomeOfError(error);
      }
    };
    return this.withToken(once, (o) => o.kind === 'response' && o.status === 401, outcomeOfError);
  }

  /** `performBatch` for up to batchSize events: one outcome per event, in order. */
  async performBatch(subscriptionId: string, events: SegmentEvent[], signal?: AbortSignal): Promise<ActionOutcome[]> {
    const sub = this.subscription(subscriptionId);
    const once = (accessToken: string | undefined): Promise<ActionOutcome[]> => {
      const answer: LastAnswer = { retryAfter: null };
      return lastAnswer.run(answer, async () => {
        try {
          const nodes = await this.destination.executeBatch(sub.action, {
            events,
            mapping: sub.mapping,
            settings: this.settings,
            auth: this.auth(accessToken),
            features: BATCH_FEATURES,
            signal,
          });
          return events.map((_, i): ActionOutcome => {
            const node = nodes[i] as { status?: number; body?: unknown; errormessage?: string } | undefined;
            if (!node) return { kind: 'response', status: 500, retryAfter: null, excerpt: 'no result for this event in the batch' };
            // The partner's Retry-After applies to the events it asked to be sent again.
            const retryAfterOf = (status: number) => (isRetryable(status) ? answer.retryAfter : null);
            if (typeof node.status === 'number') {
              return {
                kind: 'response',
                status: node.status,
                retryAfter: retryAfterOf(node.status),
                excerpt: excerptOf(node.errormessage ?? node.body),
              };
            }
            // No status for this event (a definition that could not read the partner's answer):
            // the answer's own status when it failed, else not a success the partner reported.
            const status = answer.status !== undefined && (answer.status < 200 || answer.status >= 300) ? answer.status : 500;
            return {
              kind: 'response',
              status,
              retryAfter: retryAfterOf(status),
              excerpt: excerptOf(answer.body) || excerptOf(node.errormessage),
            };
          });
        } catch (error) {
          // The whole call failed (thrown HTTP error, timeout, network): the same for every event.
          const outcome = outcomeWithAnswer(error, answer);
          return events.map(() => outcome);
        }
      });
    };
    return this.withToken(
      once,
      (all) => all.some((o) => o.kind === 'response' && o.status === 401),
      (error) => events.map(() => outcomeOfError(error)),
    );
  }

  /** True when the definition forwards deletions (`onDelete`, e.g. Amplitude's user deletion API). */
  get deletes(): boolean {
    return typeof this.definition.onDelete === 'function';
  }

  /**
   * The definition's delete handler for one user (GDPR), once: retries are the caller's (the
   * library's own `onDelete` entry point retries twice more inside, and has no timeout of ours).
   */
  async deleteUser(userId: string): Promise<ActionOutcome> {
    const onDelete = this.definition.onDelete;
    if (!onDelete) return { kind: 'response', status: 200, retryAfter: null, excerpt: 'the destination has no delete handler' };
    const once = async (accessToken: string | undefined): Promise<ActionOutcome> => {
      const payload = { userId };
      const auth = this.auth(accessToken);
      try {
        const extend = this.destination.extendRequest?.({ settings: this.settings, payload, auth } as never) ?? {};
        const result = await onDelete(createRequestClient(extend), { payload, settings: this.settings, auth } as never);
        const data = (result as { data?: unknown; content?: unknown } | undefined)?.content ?? result;
        return { kind: 'response', status: 200, retryAfter: null, excerpt: excerptOf(data) };
      } catch (error) {
        return outcomeOfError(error);
      }
    };
    return this.withToken(once, (o) => o.kind === 'response' && o.status === 401, outcomeOfError);
  }

  private subscription(id: string): PreparedSubscription {
    const sub = this.subscriptions.get(id);
    if (!sub) throw new Error(`destination ${this.config.id} has no subscription ${id}`);
    return sub;
  }

  private auth(accessToken: string | undefined) {
    if (!this.oauth) return undefined;
    return { accessToken: accessToken ?? '', refreshToken: this.oauth.refreshToken, refreshTokenUrl: this.oauth.refreshTokenUrl };
  }

  /**
   * Runs `call` with the destination's access token; for OAuth destinations, gets one first when
   * none is known and, on a 401, refreshes it once and runs `call` again (Segment's own rule).
   */
  private async withToken<T>(
    call: (accessToken: string | undefined) => Promise<T>,
    unauthorized: (result: T) => boolean,
    failed: (refreshError: unknown) => T,
  ): Promise<T> {
    if (!this.oauth) return call(undefined);
    let token = this.options.tokens.get(this.config.id, this.oauth.refreshToken) ?? this.oauth.accessToken;
    try {
      token ??= await this.refreshed(undefined);
    } catch (error) {
      return failed(error);
    }
    const first = await call(token);
    if (!unauthorized(first)) return first;
    try {
      token = await this.refreshed(token);
    } catch (error) {
      // The refresh endpoint's answer decides: 5xx/429 retried, invalid_grant (400/401) discarded.
      return failed(error);
    }
    return call(token);
  }

  private refreshed(stale: string | undefined): Promise<string> {
    const oauth = this.oauth!;
    return this.options.tokens.refresh(this.config.id, oauth.refreshToken, async () => {
      const current = this.options.tokens.get(this.config.id, oauth.refreshToken);
      // Another call refreshed while this one waited for its 401.
      if (current !== undefined && current !== stale) return current;
      const result = await this.destination.refreshAccessToken(this.settings, {
        clientId: oauth.clientId,
        clientSecret: oauth.clientSecret,
        accessToken: stale ?? '',
        refreshToken: oauth.refreshToken,
        refreshTokenUrl: oauth.refreshTokenUrl ?? '',
      });
      if (!result?.accessToken) throw new Error('the OAuth refresh returned no access token');
      return result.accessToken;
    });
  }
}
