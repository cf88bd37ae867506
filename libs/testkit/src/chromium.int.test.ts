import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackUrl, launchChromium, saveScreenshot, type LaunchedChromium } from './chromium';

// The browser helper other browser tests build on: Debian's Chromium headless, a page that
// runs script and takes clicks, requests off this machine aborted and listed, a screenshot.
const PAGE = `<!doctype html><html><head><title>before</title>
<script src="https://cdn.example.com/lib.js"></script></head>
<body><button id="b">press</button><p id="out">none</p>
<script>
  document.title = 'ran';
  document.getElementById('b').addEventListener('click', () => {
    fetch('/count').then((r) => r.text()).then((t) => { document.getElementById('out').textContent = 'count ' + t; });
  });
</script></body></html>`;

describe('launchChromium', () => {
  let server: http.Server;
  let base: string;
  let chromium: LaunchedChromium;
  let counted = 0;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/count') {
        counted += 1;
        res.end(String(counted));
        return;
      }
      res.setHeader('content-type', 'text/html');
      res.end(PAGE);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    chromium = await launchChromium();
  }, 90_000);

  afterAll(async () => {
    await chromium?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('runs a local page, takes a click, aborts off-machine requests, saves a screenshot', async () => {
    const page = await chromium.newPage();
    await page.goto(`${base}/`);
    expect(await page.title()).toBe('ran');
    await page.click('#b');
    await page.locator('#out', { hasText: 'count 1' }).waitFor();
    expect(counted).toBe(1);
    expect(chromium.blocked).toEqual(['https://cdn.example.com/lib.js']);

    const file = await saveScreenshot(page, 'testkit-chromium');
    const png = fs.readFileSync(file);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.length).toBeGreaterThan(1_000);
  }, 60_000);

  it('tells loopback addresses from others', () => {
    for (const url of ['http://127.0.0.1:1/', 'http://127.9.8.7/x', 'http://localhost:8080/', 'http://[::1]:80/', 'data:text/plain,x']) {
      expect(isLoopbackUrl(url)).toBe(true);
    }
    for (const url of ['https://cdn.example.com/a.js', 'http://10.0.0.1/', 'http://192.168.1.1/', 'http://127.0.0.1.nip.io/', 'nonsense']) {
      expect(isLoopbackUrl(url)).toBe(false);
    }
  });
});
