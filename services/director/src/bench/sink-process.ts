// A minimal HTTP sink run as its own process by the benchmark (so its CPU is not the director's).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let received = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    received += 1;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('message', (msg: unknown) => {
  if (msg === 'count') process.send?.({ received });
  if (msg === 'stop') server.close(() => process.exit(0));
});
