// A website for analytics.js tests, served on 127.0.0.1: a page that loads the unchanged
// @segment/analytics-next standalone build the way a site does (a queueing stub, then the script
// at /analytics.js/v1/<writeKey>/analytics.min.js), with this server standing in for Segment's
// CDN: the build's lazily loaded chunks at /analytics-next/bundles/, and the settings document
// at /v1/projects/<writeKey>/settings fetched from tapi (which points the SDK at itself).
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

const UMD_DIR = path.join(path.dirname(require.resolve('@segment/analytics-next/package.json')), 'dist', 'umd');

export interface AnalyticsPage {
  /** The page's URL (load it in the browser). */
  url: string;
  /** Paths the server was asked for, in order. */
  served: string[];
  close(): Promise<void>;
}

/**
 * The page for `writeKey`, whose SDK reads its settings from `tapiUrl`. tapi is reached over
 * plain HTTP here, so the page loads analytics.js with `protocol: 'http'` for Segment.io (a site
 * behind TLS needs nothing).
 */
export async function startAnalyticsPage(tapiUrl: string, writeKey: string): Promise<AnalyticsPage> {
  const served: string[] = [];
  let origin = '';
  const page = () => `<!doctype html>
<html><head><title>cdp e2e</title>
<script>
  (function () {
    // The queue analytics.js drains when it has loaded: calls made before are kept, in order.
    var analytics = (window.analytics = window.analytics || []);
    ['track', 'identify', 'page', 'alias', 'group', 'reset', 'ready'].forEach(function (method) {
      analytics[method] = function () {
        var call = Array.prototype.slice.call(arguments);
        call.unshift(method);
        analytics.push(call);
        return analytics;
      };
    });
    analytics._writeKey = ${JSON.stringify(writeKey)};
    analytics._cdn = ${JSON.stringify(origin)};
    analytics._loadOptions = { integrations: { 'Segment.io': { protocol: 'http' } } };
    // What a site's snippet does once: the page view, queued until analytics.js has loaded.
    analytics.page();
  })();
</script>
<script async src="/analytics.js/v1/${encodeURIComponent(writeKey)}/analytics.min.js"></script>
</head><body><h1>cdp e2e</h1></body></html>`;

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    served.push(url);
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url === '/' || url === '/index.html') return send(200, 'text/html; charset=utf-8', page());
    if (url === `/analytics.js/v1/${encodeURIComponent(writeKey)}/analytics.min.js`) {
      return send(200, 'application/javascript', fs.readFileSync(path.join(UMD_DIR, 'standalone.js')));
    }
    const chunk = /^\/analytics-next\/bundles\/([A-Za-z0-9._-]+\.js)$/.exec(url);
    if (chunk && fs.existsSync(path.join(UMD_DIR, chunk[1]))) {
      return send(200, 'application/javascript', fs.readFileSync(path.join(UMD_DIR, chunk[1])));
    }
    if (/^\/v1\/projects\/[^/]+\/settings$/.test(url)) {
      fetch(`${tapiUrl}${url}`).then(
        async (r) => send(r.status, r.headers.get('content-type') ?? 'application/json', await r.text()),
        (error: Error) => send(502, 'text/plain', `tapi: ${error.message}`),
      );
      return;
    }
    send(404, 'text/plain', 'not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/`,
    served,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
