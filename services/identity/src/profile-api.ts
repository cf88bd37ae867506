// Segment's Profile API (segment-compat.md §3.4b) on identity's admin port: a profile looked up by
// one of its external ids (`type:value`; a merged-away profile answers with the live one),
// Segment's routes, parameters, shapes, paging and error codes, plus `merges`, which explains
// the profile's merges and the ids merge protection kept off it.
import type { Express, Request, Response } from 'express';
import { HttpError, pageCursor, pageRequest, takePage } from '@cdp/http';
import type { Workspace } from '@cdp/workspace';
import type { GraphStore, Profile } from './graph';
import { profileApiRequests } from './metrics';
import type { RecentEvents, RecentEventSummary } from './recent';

export interface ProfileApiDeps {
  store: GraphStore;
  recent: RecentEvents;
  workspace: () => Workspace;
  /** Requests a second per space (Segment's default is 100), with as much burst. */
  ratePerSecond: number;
  now?: () => number;
}

const BASE = '/v1/spaces/:space/collections/users/profiles/:externalId';
/** Merge chains are bounded by the merge cap; this only guards against a corrupt graph. */
const MAX_CHAIN = 10_000;

const validation = (message: string) => new HttpError(400, 'validation_error', message);
const notFound = () => new HttpError(404, 'not_found', 'Profile was not found.');

function single(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw validation(`${name} must be given once`);
  return v;
}

/** A comma-separated list parameter (`include=a,b`), undefined when absent. */
function list(req: Request, name: string): Set<string> | undefined {
  const v = single(req, name);
  if (v === undefined) return undefined;
  const items = v
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (items.length === 0) throw validation(`${name} must list at least one name`);
  return new Set(items);
}

function bool(req: Request, name: string): boolean {
  const v = single(req, name);
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  throw validation(`${name} must be true or false`);
}

function time(req: Request, name: string): number | undefined {
  const v = single(req, name);
  if (v === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw validation(`${name} must be an ISO 8601 time`);
  return t;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Per-space token buckets: `rate` a second, as much burst. */
class SpaceRateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly rate: number,
    private readonly now: () => number,
  ) {}

  /** Takes a token; returns the ms to wait when there is none. */
  take(space: string): number {
    const now = this.now();
    const b = this.buckets.get(space) ?? { tokens: this.rate, at: now };
    b.tokens = Math.min(this.rate, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    this.buckets.set(space, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / this.rate) * 1000);
  }
}

export function profileApiRoutes(deps: ProfileApiDeps): (app: Express) => void {
  const now = deps.now ?? Date.now;
  const limiter = new SpaceRateLimit(deps.ratePerSecond, now);

  /** The space, the external id asked for and the live profile it leads to; 404 when none. */
  async function lookup(req: Request): Promise<{ space: string; id: string; profile: Profile }> {
    const space = String(req.params.space);
    const id = String(req.params.externalId);
    const colon = id.indexOf(':');
    if (colon <= 0 || colon === id.length - 1)
      throw validation('the profile id must be type:value, URL-encoded (user_id:42, email:a%40b.c)');
    if (!deps.workspace().space(space)) throw notFound();
    const mapped = (await deps.store.mappings(space, [id])).get(id);
    if (!mapped) throw notFound();
    let profileId = mapped;
    for (let hops = 0; hops < MAX_CHAIN; hops++) {
      const p = await deps.store.profile(space, profileId);
      if (!p) throw notFound();
      if (!p.mergedInto) return { space, id, profile: p };
      profileId = p.mergedInto;
    }
    throw new Error(`profile ${mapped}: mergedInto chain longer than ${MAX_CHAIN}`);
  }

  const route =
    (name: string, handler: (req: Request, res: Response) => Promise<void>) =>
    async (req: Request, res: Response): Promise<void> => {
      const wait = limiter.take(String(req.params.space));
      if (wait > 0) {
        profileApiRequests.labels(name, '429').inc();
        res.setHeader('Retry-After', String(Math.ceil(wait / 1000)));
        throw new HttpError(429, 'rate_limit_error', `Too many requests for this space; at most ${deps.ratePerSecond} a second.`);
      }
      try {
        await handler(req, res);
        profileApiRequests.labels(name, String(res.statusCode)).inc();
      } catch (error) {
        profileApiRequests.labels(name, error instanceof HttpError ? String(error.status) : '500').inc();
        throw error;
      }
    };

  return (app) => {
    app.get(
      `${BASE}/traits`,
      route('traits', async (req, res) => {
        const page = pageRequest(req.query, { defaultLimit: 10, maxLimit: 200 });
        const include = list(req, 'include');
        const verbose = bool(req, 'verbose');
        const cls = single(req, 'class');
        if (cls !== undefined && cls !== 'audience' && cls !== 'computed_trait')
          throw validation('class must be audience or computed_trait');
        const { profile } = await lookup(req);
        // Audiences and computed traits are not built here: those classes have none.
        const names =
          cls !== undefined
            ? []
            : Object.keys(profile.traits)
                .filter((n) => !include || include.has(n))
                .sort();
        const after = page.after;
        if (after !== undefined && typeof after !== 'string') throw validation('next is not a cursor of this list');
        const rows = names.filter((n) => after === undefined || n > after).slice(0, page.limit + 1);
        const { items, next } = takePage(rows, page.limit, (last) => last);
        const traits: Record<string, unknown> = {};
        for (const n of items) {
          const t = profile.traits[n];
          traits[n] = verbose ? { value: t.v, source_id: t.s ?? null, updated_at: iso(t.t) } : t.v;
        }
        res.json({ traits, cursor: pageCursor(req.originalUrl, next) });
      }),
    );

    app.get(
      `${BASE}/external_ids`,
      route('external_ids', async (req, res) => {
        const page = pageRequest(req.query, { defaultLimit: 25, maxLimit: 100 });
        const include = list(req, 'include');
        bool(req, 'verbose'); // accepted as Segment does; every field is always answered
        const { space, profile } = await lookup(req);
        type Row = [id: string, at: number];
        const order = (a: Row, b: Row) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
        const after = page.after as Row | undefined;
        if (after !== undefined && (!Array.isArray(after) || typeof after[0] !== 'string' || typeof after[1] !== 'number'))
          throw validation('next is not a cursor of this list');
        const rows = (Object.entries(profile.ids) as Row[])
          .filter(([id]) => !include || include.has(id.slice(0, id.indexOf(':'))))
          .sort(order)
          .filter((r) => after === undefined || order(r, after) > 0)
          .slice(0, page.limit + 1);
        const { items, next } = takePage(rows, page.limit, (last) => last);
        const details = await deps.store.mappingDetails(
          space,
          items.map(([id]) => id),
        );
        const data = items.map(([id, at]) => {
          const colon = id.indexOf(':');
          const d = details.get(id);
          return {
            source_id: d?.sourceId || null,
            collection: 'users',
            id: id.slice(colon + 1),
            type: id.slice(0, colon),
            created_at: iso(at),
            encoding: 'none',
            first_message_id: d?.messageId || null,
          };
        });
        res.json({ data, cursor: pageCursor(req.originalUrl, next) });
      }),
    );

    app.get(
      `${BASE}/events`,
      route('events', async (req, res) => {
        const page = pageRequest(req.query, { defaultLimit: 10, maxLimit: 100 });
        const start = time(req, 'start');
        const end = time(req, 'end');
        if (start !== undefined && end !== undefined && start > end) throw validation('start must not be after end');
        const include = list(req, 'include');
        const exclude = list(req, 'exclude');
        const sort = single(req, 'sort') ?? 'desc';
        if (sort !== 'asc' && sort !== 'desc') throw validation('sort must be asc or desc');
        const after = page.after as [number, string] | undefined;
        if (after !== undefined && (!Array.isArray(after) || typeof after[0] !== 'number' || typeof after[1] !== 'string'))
          throw validation('next is not a cursor of this list');
        const { space, profile } = await lookup(req);
        const sign = sort === 'asc' ? 1 : -1;
        const order = (a: [number, string], b: [number, string]) => sign * (a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
        const pos = (s: RecentEventSummary): [number, string] => [s.at, s.messageId];
        const rows = (await deps.recent.summaries(space, [profile.profileId, ...profile.mergedFrom], now()))
          .filter(
            (s) =>
              (start === undefined || s.at >= start) &&
              (end === undefined || s.at <= end) &&
              (!include || include.has(s.name)) &&
              (!exclude || !exclude.has(s.name)),
          )
          .sort((a, b) => order(pos(a), pos(b)))
          .filter((s) => after === undefined || order(pos(s), after) > 0)
          .slice(0, page.limit + 1);
        const { items, next } = takePage(rows, page.limit, pos);
        res.json({ data: await deps.recent.bodies(space, items), cursor: pageCursor(req.originalUrl, next) });
      }),
    );

    app.get(
      `${BASE}/metadata`,
      route('metadata', async (req, res) => {
        const { profile: p } = await lookup(req);
        res.json({
          metadata: {
            created_at: iso(p.createdAt),
            updated_at: iso(Math.max(p.createdAt, p.lastSeenAt)),
            expires_at: null,
            first_message_id: p.firstMessageId || null,
            first_source_id: p.firstSourceId || null,
            last_message_id: p.lastMessageId || null,
            last_source_id: p.lastSourceId || null,
          },
        });
      }),
    );

    app.get(
      `${BASE}/links`,
      route('links', async (req, res) => {
        pageRequest(req.query, { defaultLimit: 10, maxLimit: 100 });
        await lookup(req);
        // Accounts (group_id profiles) are not resolved here, so a user has no links.
        res.json({ data: [], cursor: pageCursor(req.originalUrl, undefined) });
      }),
    );

    app.get(
      `${BASE}/merges`,
      route('merges', async (req, res) => {
        const { space, id, profile: p } = await lookup(req);
        const mapped = (await deps.store.mappings(space, [id])).get(id);
        res.json({
          profile_id: p.profileId,
          // The profile the asked id's mapping names (a merged-away one until the merge repointed it).
          requested: { id, mapped_to: mapped ?? null },
          merged_from: p.mergedFrom,
          merges: p.mergeLog.map((m) => ({
            at: iso(m.at),
            merged_profiles: m.merged,
            message_id: m.messageId,
            source_id: m.sourceId || null,
            matched_ids: m.ids,
          })),
          refusals: p.refusalLog.map((r) => ({
            at: iso(r.at),
            reason: r.reason,
            id: r.id,
            limit_type: r.type ?? null,
            other_profile_id: r.profileId ?? null,
            message_id: r.messageId,
            source_id: r.sourceId || null,
          })),
        });
      }),
    );
  };
}
