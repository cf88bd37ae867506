import { HttpError, type AdminAppOptions } from '@cdp/http';
import type { Replayer } from './replayer';
import { replayRequestSchema, type ReplayStore, type ReplayView } from './replay-store';

export interface ReplayRoutesOptions {
  store: ReplayStore;
  replayer: Replayer;
  /** Events per second of a replay that names no rate. */
  defaultRate: number;
}

const ID = /^[0-9a-f-]{36}$/;

function issues(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || 'body'}: ${i.message}`).join('; ');
}

/** Control transitions: which states each action leaves from, and where to. */
const ACTIONS = {
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  cancel: { from: ['running', 'paused'], to: 'cancelled' },
} as const;

/**
 * The archiver's admin API (libs/http admin server):
 * - `POST /v1/replays` `{ sourceId, from, to, kind?, destinations?, force?, ratePerSecond? }` → 201 `{ data: replay }`
 * - `GET /v1/replays` → `{ data: [replay] }`, newest first; `GET /v1/replays/:id` → `{ data: replay }`
 * - `POST /v1/replays/:id/pause|resume|cancel` → `{ data: replay }`; 409 when the replay is not in a state that allows it
 */
export function replayRoutes({ store, replayer, defaultRate }: ReplayRoutesOptions): AdminAppOptions['routes'] {
  const view = async (params: Record<string, string | string[]>): Promise<ReplayView> => {
    const id = String(params.id);
    const found = ID.test(id) ? await store.view(id) : undefined;
    if (!found) throw new HttpError(404, 'not_found', `no replay ${id}`);
    return found;
  };
  return (app) => {
    app.post('/v1/replays', async (req, res) => {
      const parsed = replayRequestSchema.safeParse(req.body);
      if (!parsed.success) throw new HttpError(400, 'invalid_request', issues(parsed.error));
      const spec = await store.create(parsed.data, defaultRate);
      replayer.take(spec.id);
      res.status(201).json({ data: await store.view(spec.id) });
    });
    app.get('/v1/replays', async (_req, res) => {
      const views = (await Promise.all((await store.ids()).map((id) => store.view(id)))).filter((v) => v !== undefined);
      views.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
      res.json({ data: views });
    });
    app.get('/v1/replays/:id', async (req, res) => {
      res.json({ data: await view(req.params) });
    });
    app.post('/v1/replays/:id/:action', async (req, res) => {
      const action = ACTIONS[String(req.params.action) as keyof typeof ACTIONS] as (typeof ACTIONS)[keyof typeof ACTIONS] | undefined;
      if (!action || !Object.hasOwn(ACTIONS, String(req.params.action)))
        throw new HttpError(404, 'not_found', `no action ${String(req.params.action)} (pause, resume, cancel)`);
      const current = await view(req.params);
      if (!(action.from as readonly string[]).includes(current.state))
        throw new HttpError(
          409,
          'conflict',
          `replay ${current.id} is ${current.state}; ${String(req.params.action)} needs ${action.from.join(' or ')}`,
        );
      await store.putControl(current.id, action.to);
      if (action.to === 'running') replayer.take(current.id);
      res.json({ data: await store.view(current.id) });
    });
  };
}
