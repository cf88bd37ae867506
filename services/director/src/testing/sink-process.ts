// An HTTP sink in its own process (tests fork dist/testing/sink-process.js), so the sink's CPU
// does not count against the director's latency. Routes come as JSON in argv[2]:
// { "/path": { "status": 200, "delayMs": 5 } | "hang" }. Records each request's arrival time and
// the `properties` of its JSON body; the parent asks for them with the message { dump: tag }.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Route = { status: number; delayMs?: number } | 'hang';
const routes = JSON.parse(process.argv[2] ?? '{}') as Record<string, Route>;
const seen: Array<{ path: string; at: number; properties: unknown }> = [];

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const path = (req.url ?? '/').split('?')[0];
    let properties: unknown = null;
    try {
      properties = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { properties?: unknown }).properties ?? null;
    } catch {
      // not JSON: recorded without properties
    }
    seen.push({ path, at: Date.now(), properties });
    const route = routes[path] ?? { status: 200 };
    if (route === 'hang') return;
    const send = () => {
      res.writeHead(route.status, { 'content-type': 'text/plain' });
      res.end(route.status >= 400 ? 'failed' : 'ok');
    };
    if (route.delayMs) setTimeout(send, route.delayMs);
    else send();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
process.on('message', (msg: unknown) => {
  // { dump: tag }: the requests whose properties.tag is `tag` (all of them for '').
  if (typeof msg === 'object' && msg !== null && 'dump' in msg) {
    const tag = String(msg.dump);
    process.send?.({ tag, seen: tag === '' ? seen : seen.filter((s) => (s.properties as { tag?: unknown } | null)?.tag === tag) });
  }
  if (msg === 'stop') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
