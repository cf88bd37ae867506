import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, BrowserContextOptions, Page } from 'playwright-core';
import { REPO_ROOT } from './paths';

/** Debian's package `chromium` (scripts/install-chromium.sh); CHROMIUM_PATH overrides. */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/** Where browser tests keep screenshots (git-ignored; scripts/test.sh empties .test-results at its start). */
export const SCREENSHOT_DIR = path.join(REPO_ROOT, '.test-results', 'screenshots');

/**
 * Flags for a closed network and a shared machine: no background connections (update checks,
 * sync, component downloads, field trials: each is refused here and only adds noise and time),
 * no GPU, no first-run UI, no QUIC.
 */
const CHROMIUM_ARGS = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-breakpad',
  '--disable-field-trial-config',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-gpu',
  '--disable-quic',
  '--disable-dev-shm-usage',
  '--metrics-recording-only',
  '--no-pings',
];

export interface ChromiumOptions {
  /** Extra command-line switches. */
  args?: string[];
  /** How long the browser may take to start (a loaded 2-core machine): default 60 s. */
  timeoutMs?: number;
}

export interface ChromiumPageOptions extends BrowserContextOptions {
  /**
   * Requests to hosts outside the loopback range are aborted and listed in `blocked` (default
   * true): tests only ever talk to this machine, and a page that reaches for a CDN shows up.
   */
  loopbackOnly?: boolean;
}

export interface LaunchedChromium {
  browser: Browser;
  /** Every request the pages' loopback guard aborted (URLs). */
  blocked: string[];
  /** Uncaught page errors and console errors of every page, as text. */
  pageErrors: string[];
  /** A page in a new context (cookies, storage and Basic credentials of its own). */
  newPage(options?: ChromiumPageOptions): Promise<Page>;
  /** Closes every context and the browser process. */
  close(): Promise<void>;
}

/** 127.0.0.0/8, localhost and [::1]: the only hosts a test may reach. */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'data:' || parsed.protocol === 'blob:' || parsed.protocol === 'about:') return true;
    host = parsed.hostname;
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Starts Debian's Chromium headless through playwright-core (no browser download: the binary
 * comes from scripts/install-chromium.sh, which scripts/test.sh runs). Pages made with
 * `newPage` abort any request outside the loopback range and collect page errors, so a test
 * can assert the page used only local assets and threw nothing. Close it in `afterAll`.
 */
export async function launchChromium(options: ChromiumOptions = {}): Promise<LaunchedChromium> {
  const executablePath = process.env.CHROMIUM_PATH ?? DEFAULT_CHROMIUM_PATH;
  if (!fs.existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: run \`bash scripts/install-chromium.sh\` (or set CHROMIUM_PATH)`);
  }
  const { chromium } = await import('playwright-core');
  const args = [...CHROMIUM_ARGS, ...(options.args ?? [])];
  // Root cannot use Chromium's sandbox (CI and these machines run tests as root).
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  const browser = await chromium.launch({ executablePath, headless: true, args, timeout: options.timeoutMs ?? 60_000 });
  const contexts: BrowserContext[] = [];
  const blocked: string[] = [];
  const pageErrors: string[] = [];
  return {
    browser,
    blocked,
    pageErrors,
    async newPage(pageOptions: ChromiumPageOptions = {}) {
      const { loopbackOnly = true, ...contextOptions } = pageOptions;
      const context = await browser.newContext(contextOptions);
      contexts.push(context);
      if (loopbackOnly) {
        await context.route(
          (url) => !isLoopbackUrl(url.toString()),
          async (route) => {
            blocked.push(route.request().url());
            await route.abort('blockedbyclient');
          },
        );
      }
      const page = await context.newPage();
      page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
      page.on('console', (message) => {
        if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
      });
      return page;
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => undefined);
      await browser.close();
    },
  };
}

/** Saves a full-page PNG as `.test-results/screenshots/<name>.png` (an artifact of the run); returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: use [A-Za-z0-9._-]`);
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
