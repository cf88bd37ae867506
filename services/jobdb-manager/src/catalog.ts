// The destination catalog on the admin API: what a workspace may configure as a destination —
// the built-in webhook and Segment's action destinations this project runs, with their settings
// and actions (fields, required ones, default mappings) read from the definitions.
import type { Express } from 'express';
import { catalog, type CatalogEntry } from '@cdp/actions';
import { HttpError } from '@cdp/http';

/** The built-in webhook, in the catalog's shape (its settings are libs/workspace's schema). */
const WEBHOOK: CatalogEntry = {
  type: 'webhook',
  name: 'Webhook',
  description: 'The Segment event as the JSON body, signed with HMAC-SHA256 when hmacSecret is set.',
  authentication: 'none',
  oauth: false,
  deletion: false,
  settings: [
    { name: 'url', label: 'URL', type: 'string', required: true },
    { name: 'method', label: 'Method', type: 'string', required: false, choices: ['POST', 'PUT', 'PATCH'], default: 'POST' },
    { name: 'headers', label: 'Headers', type: 'object', required: false },
    { name: 'timeoutMs', label: 'Timeout (ms)', type: 'integer', required: false, default: 10_000 },
    { name: 'hmacSecret', label: 'HMAC secret (secret reference)', type: 'password', required: false },
  ],
  actions: [],
};

/** GET /v1/catalog/destinations: `{ data: CatalogEntry[] }`; GET /v1/catalog/destinations/:type: one entry. */
export function catalogRoutes(app: Express): void {
  let entries: CatalogEntry[] | undefined;
  // Definitions are loaded on the first request, not at start.
  const all = () => (entries ??= [WEBHOOK, ...catalog()]);
  app.get('/v1/catalog/destinations', (_req, res) => {
    res.json({ data: all() });
  });
  app.get('/v1/catalog/destinations/:type', (req, res) => {
    const entry = all().find((e) => e.type === req.params.type);
    if (!entry) throw new HttpError(404, 'not_found', `no destination type ${String(req.params.type)}`);
    res.json(entry);
  });
}
