// jobdb-manager's admin API (libs/http admin server): the JobDB list, destination controls
// written to the Consul key directors watch, and the Event Delivery API the page at / reads.
import path from 'node:path';
import type { Express, Request } from 'express';
import {
  KEY_ID,
  destinationControlSchema,
  parseDestinationControls,
  parseKvJson,
  type ConsulClient,
  type ConsulKeys,
  type DestinationControl,
} from '@cdp/consul';
import { HttpError, encodeCursor, pageCursor, pageRequest, takePage } from '@cdp/http';
import { jobDbUsage, listJobDbs } from '@cdp/jobdb';
import type { Logger } from '@cdp/log';
import type { DeliveryStatus } from './delivery';
import * as m from './metrics';

/** The Event Delivery page (index.html, app.js, style.css): `public/` beside src/ and dist/. */
export const PAGE_DIR = path.join(__dirname, '..', 'public');

export interface AdminDeps {
  consul: ConsulClient;
  keys: ConsulKeys;
  /** The manager's MYSQL_URL (JobDB sizes). */
  mysqlUrl: string;
  delivery: DeliveryStatus;
  logger: Logger;
  now?: () => number;
}

const CAS_ATTEMPTS = 5;
/** A control body may set these; `null` removes one. */
const controlPatchSchema = destinationControlSchema
  .extend({
    paused: destinationControlSchema.shape.paused.nullable(),
    priority: destinationControlSchema.shape.priority.nullable(),
    rateLimitPerSecond: destinationControlSchema.shape.rateLimitPerSecond.nullable(),
  })
  .strict();

function invalid(message: string): HttpError {
  return new HttpError(400, 'invalid_request_error', message);
}

function idParam(req: Request, name: string): string {
  const value = req.params[name];
  if (typeof value !== 'string' || !KEY_ID.test(value)) throw invalid(`${name} must match ${KEY_ID.source}`);
  return value;
}

function optionalQueryId(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !KEY_ID.test(value)) throw invalid(`${name} must match ${KEY_ID.source}`);
  return value;
}

function intQuery(req: Request, name: string, fallback: number, min: number, max: number): number {
  const value = req.query[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,6}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}`);
  }
  return Number(value);
}

/** Sorted keys, so the stored JSON is the same for the same control. */
function canonical(control: DestinationControl): string {
  return JSON.stringify(Object.fromEntries(Object.entries(control).sort(([a], [b]) => (a < b ? -1 : 1))));
}

export function managerAdminRoutes(deps: AdminDeps): (app: Express) => void {
  const { consul, keys } = deps;
  const now = deps.now ?? Date.now;

  async function readControl(id: string): Promise<{ control: DestinationControl; modifyIndex: number }> {
    const entry = await consul.kv.get(keys.destinationControl(id), { consistent: true });
    if (!entry) return { control: {}, modifyIndex: 0 };
    try {
      return { control: parseKvJson(destinationControlSchema, entry.Value ?? '{}'), modifyIndex: entry.ModifyIndex };
    } catch (error) {
      // A hand-written bad value: directors ignore it; the API replaces it on the next write.
      deps.logger.warn({ destination: id, reason: (error as Error).message }, 'invalid destination control in Consul: treated as none');
      return { control: {}, modifyIndex: entry.ModifyIndex };
    }
  }

  /** Read, change, check-and-set write; retried when another writer came in between. */
  async function updateControl(id: string, change: (c: DestinationControl) => DestinationControl): Promise<DestinationControl> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { control, modifyIndex } = await readControl(id);
      const next = change({ ...control });
      if (await consul.kv.set(keys.destinationControl(id), canonical(next), { cas: modifyIndex })) {
        m.controlWrites.inc();
        deps.logger.info({ destination: id, control: next }, 'destination control written');
        return next;
      }
    }
    throw new HttpError(409, 'conflict', `the control of ${id} kept changing; try again`);
  }

  async function allControls(): Promise<Map<string, DestinationControl>> {
    const items = await consul.kv.list(keys.destinations);
    return parseDestinationControls(keys, items);
  }

  return (app) => {
    app.get('/v1/jobdbs', async (req, res) => {
      const page = pageRequest(req.query, { defaultLimit: 100, maxLimit: 500 });
      const after = page.after as { id?: unknown } | undefined;
      if (after !== undefined && typeof after.id !== 'string') throw invalid('next is not a cursor this server issued');
      const [entries, sessions] = await Promise.all([listJobDbs(consul, keys), consul.session.list()]);
      const names = new Map(sessions.map((s) => [s.ID, s.Name]));
      const rows = entries.filter((e) => after === undefined || e.id > (after.id as string)).slice(0, page.limit + 1);
      const { items, next } = takePage(rows, page.limit, (last) => ({ id: last.id }));
      const at = now();
      const jobdbs = [];
      for (const e of items) {
        const usage = await jobDbUsage(deps.mysqlUrl, e.dsnRef).catch(() => undefined);
        jobdbs.push({
          id: e.id,
          state: e.state,
          database: e.dsnRef,
          createdAt: e.createdAt,
          ageSeconds: Math.max(0, Math.round((at - Date.parse(e.createdAt)) / 1_000)),
          holder: e.holder === undefined ? null : { session: e.holder, name: names.get(e.holder) ?? null },
          leases: usage?.leases ?? null,
          firstLeaseAt: usage?.firstLeaseAt?.toISOString() ?? null,
          approxJobs: usage?.approxJobs ?? null,
          bytes: usage?.bytes ?? null,
        });
      }
      res.json({ data: { jobdbs }, cursor: pageCursor(req.originalUrl, next) });
    });

    app.get('/v1/destinations', async (_req, res) => {
      const controls = await allControls();
      res.json({ data: { destinations: [...controls].map(([destinationId, control]) => ({ destinationId, control })) } });
    });

    app.get('/v1/destinations/:destinationId/control', async (req, res) => {
      const id = idParam(req, 'destinationId');
      res.json({ data: { destinationId: id, control: (await readControl(id)).control } });
    });

    // Sets the fields given (null removes one); the others stay.
    app.patch('/v1/destinations/:destinationId/control', async (req, res) => {
      const id = idParam(req, 'destinationId');
      const body = controlPatchSchema.safeParse(req.body ?? {});
      if (!body.success) throw invalid(body.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
      const control = await updateControl(id, (c) => {
        for (const [field, value] of Object.entries(body.data)) {
          if (value === null) delete (c as Record<string, unknown>)[field];
          else if (value !== undefined) (c as Record<string, unknown>)[field] = value;
        }
        return c;
      });
      res.json({ data: { destinationId: id, control } });
    });

    app.post('/v1/destinations/:destinationId/pause', async (req, res) => {
      const id = idParam(req, 'destinationId');
      res.json({ data: { destinationId: id, control: await updateControl(id, (c) => ({ ...c, paused: true })) } });
    });

    app.post('/v1/destinations/:destinationId/resume', async (req, res) => {
      const id = idParam(req, 'destinationId');
      res.json({ data: { destinationId: id, control: await updateControl(id, (c) => ({ ...c, paused: false })) } });
    });

    app.get('/v1/delivery', async (_req, res) => {
      const [pairs, controls] = await Promise.all([deps.delivery.overview(), allControls()]);
      const ids = new Set([...pairs.map((p) => p.destinationId), ...controls.keys()]);
      const destinations = [...ids].sort().map((destinationId) => ({
        destinationId,
        control: controls.get(destinationId) ?? {},
        pairs: pairs.filter((p) => p.destinationId === destinationId),
      }));
      res.json({ data: { generatedAt: new Date(now()).toISOString(), destinations } });
    });

    app.get('/v1/delivery/destinations/:destinationId', async (req, res) => {
      const id = idParam(req, 'destinationId');
      const sourceId = optionalQueryId(req, 'sourceId');
      const minutes = intQuery(req, 'minutes', 180, 1, 1440);
      const [delivery, control] = await Promise.all([deps.delivery.destination(id, { sourceId, minutes }), readControl(id)]);
      res.json({ data: { ...delivery, control: control.control } });
    });

    app.get('/v1/delivery/destinations/:destinationId/failures', async (req, res) => {
      const id = idParam(req, 'destinationId');
      const sourceId = optionalQueryId(req, 'sourceId');
      const page = pageRequest(req.query, { defaultLimit: 20, maxLimit: 200 });
      const after = page.after as { row?: unknown; index?: unknown } | undefined;
      if (after !== undefined && !(Number.isSafeInteger(after.row) && Number.isSafeInteger(after.index))) {
        throw invalid('next is not a cursor this server issued');
      }
      const result = await deps.delivery.failures(id, {
        sourceId,
        limit: page.limit,
        before: after === undefined ? undefined : { row: after.row as number, index: after.index as number },
      });
      const next = result.next === undefined ? undefined : encodeCursor(result.next);
      res.json({ data: { failures: result.items }, cursor: pageCursor(req.originalUrl, next) });
    });
  };
}
