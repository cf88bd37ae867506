import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@cdp/log';
import { Registry } from '@cdp/metrics';
import { metricSamples } from '@cdp/testkit';
import { WorkspaceConfigError, WorkspaceStore, type Workspace } from './index';

const SAMPLE_TEXT = readFileSync(resolve(__dirname, '../../../config/workspace.sample.yaml'), 'utf8');
const HMAC = 'store-test-hmac-secret-5678';

let dir: string;
let stores: WorkspaceStore[];

beforeAll(() => {
  process.env.CDP_SAMPLE_HMAC_SECRET = HMAC;
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-workspace-store-'));
  stores = [];
});
afterEach(() => {
  for (const store of stores) store.close();
  rmSync(dir, { recursive: true, force: true });
});

function captureLogs() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, logger: createLogger({ name: 'workspace-test', destination }) };
}

/** Replaces a file the way ConfigMap updates and editors do: write aside, then rename over. */
function replaceFile(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function open(file: string, extra: Partial<Parameters<typeof WorkspaceStore.open>[0]> = {}) {
  const logs = captureLogs();
  const registry = new Registry();
  const store = WorkspaceStore.open({ file, pollIntervalMs: 20, logger: logs.logger, registry, ...extra });
  stores.push(store);
  return { store, registry, logs };
}

/** The samples of `name` the registry serves whose labels include `labels`. */
async function samples(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number[]> {
  return metricSamples(await registry.metrics(), name, labels);
}

/** Resolves on the next event, failing clearly instead of hanging until jest's timeout. */
function next<T extends unknown[]>(store: WorkspaceStore, event: 'change' | 'rejected', ms = 5000): Promise<T> {
  return Promise.race([
    once(store, event) as Promise<T>,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no ${event} event within ${ms} ms`)), ms).unref()),
  ]);
}

describe('WorkspaceStore', () => {
  it('fails to start on an invalid file, naming the field', () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT.replace('spaceId: main\n    # Write keys', 'spaceId: nowhere\n    # Write keys'));
    expect(() => open(file)).toThrow(WorkspaceConfigError);
    expect(() => open(file)).toThrow(`workspace ${file}: sources[0].spaceId: unknown space "nowhere"`);
  });

  it('picks up a valid edit without restart', async () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT);
    const { store, registry } = open(file);
    const first = store.current();
    expect(await samples(registry, 'cdp_workspace_config_info', { version: first.version })).toEqual([1]);

    const changed = next<[Workspace, Workspace]>(store, 'change');
    replaceFile(file, SAMPLE_TEXT.replace('name: Backend (analytics-node)', 'name: Backend v2'));
    const [now, previous] = await changed;

    expect(previous).toBe(first);
    expect(now.version).not.toBe(first.version);
    expect(store.current()).toBe(now);
    expect(store.current().source('server')?.name).toBe('Backend v2');
    expect(await samples(registry, 'cdp_workspace_reloads_total', { outcome: 'applied' })).toEqual([1]);
    expect(await samples(registry, 'cdp_workspace_last_reload_success')).toEqual([1]);
    expect(await samples(registry, 'cdp_workspace_config_info', { version: now.version })).toEqual([1]);
    expect(await samples(registry, 'cdp_workspace_config_info', { version: first.version })).toEqual([]);
  });

  it('rejects an invalid edit, keeps the previous version, counts it once and logs it', async () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT);
    const { store, registry, logs } = open(file);
    const first = store.current();

    const rejected = next<[WorkspaceConfigError]>(store, 'rejected');
    replaceFile(file, SAMPLE_TEXT.replace('writeKeys: [wk_server_sample_0001]', 'writeKeys: []'));
    const [error] = await rejected;

    expect(error.message).toContain('sources[1].writeKeys: must contain at least one key');
    expect(store.current()).toBe(first);
    // Several more polls of the same bad content: still one rejection.
    for (let i = 0; i < 3; i++) expect(await store.check()).toBe('unchanged');
    expect(await samples(registry, 'cdp_workspace_reloads_total', { outcome: 'rejected' })).toEqual([1]);
    expect(await samples(registry, 'cdp_workspace_reloads_total', { outcome: 'applied' })).toEqual([0]);
    expect(await samples(registry, 'cdp_workspace_last_reload_success')).toEqual([0]);

    const warnings = logs.lines.map((l) => JSON.parse(l)).filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toContain('sources[1].writeKeys: must contain at least one key');
    expect(warnings[0].msg).toContain(`keeping version ${first.version}`);

    // Reverting the bad edit clears the alarm without a swap.
    replaceFile(file, SAMPLE_TEXT);
    expect(await store.check()).toBe('unchanged');
    expect(store.current()).toBe(first);
    expect(await samples(registry, 'cdp_workspace_last_reload_success')).toEqual([1]);
  });

  it('follows a Kubernetes ConfigMap symlink swap', async () => {
    // The kubelet layout: file -> ..data/file, ..data -> ..<timestamp>/, swapped by rename.
    const mount = join(dir, 'mount');
    mkdirSync(join(mount, '..v1'), { recursive: true });
    mkdirSync(join(mount, '..v2'));
    writeFileSync(join(mount, '..v1', 'workspace.yaml'), SAMPLE_TEXT);
    writeFileSync(join(mount, '..v2', 'workspace.yaml'), SAMPLE_TEXT.replace('maxConcurrency: 20', 'maxConcurrency: 7'));
    symlinkSync('..v1', join(mount, '..data'));
    symlinkSync(join('..data', 'workspace.yaml'), join(mount, 'workspace.yaml'));

    const { store } = open(join(mount, 'workspace.yaml'));
    expect(store.current().destination('hook')?.limits.maxConcurrency).toBe(20);
    const changed = next(store, 'change');
    symlinkSync('..v2', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    await changed;
    expect(store.current().destination('hook')?.limits.maxConcurrency).toBe(7);
  });

  it('reloads when a mounted $file secret is rotated, and retries a version whose secret appears later', async () => {
    const secret = join(dir, 'hmac');
    writeFileSync(secret, 'first-rotated-secret\n');
    const file = join(dir, 'workspace.yaml');
    const withFile = SAMPLE_TEXT.replace('{ $env: CDP_SAMPLE_HMAC_SECRET }', '{ $file: hmac }');
    writeFileSync(file, withFile);
    const { store } = open(file, { pollIntervalMs: 0 });
    const hook = () => store.current().destination('hook')?.settings as { hmacSecret?: string };
    expect(hook().hmacSecret).toBe('first-rotated-secret');

    replaceFile(secret, 'second-rotated-secret\n');
    expect(await store.check()).toBe('applied');
    expect(hook().hmacSecret).toBe('second-rotated-secret');

    // A ConfigMap that references a Secret not mounted yet is rejected, then applied once it is.
    replaceFile(file, withFile.replace('{ $file: hmac }', '{ $file: hmac2 }'));
    expect(await store.check()).toBe('rejected');
    expect(await store.check()).toBe('unchanged');
    writeFileSync(join(dir, 'hmac2'), 'third-secret-value');
    expect(await store.check()).toBe('applied');
    expect(hook().hmacSecret).toBe('third-secret-value');
  });

  it('never writes a resolved secret to the log', async () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT);
    const { store, logs } = open(file, { pollIntervalMs: 0 });
    replaceFile(file, SAMPLE_TEXT.replace('name: Main', 'name: Main 2'));
    expect(await store.check()).toBe('applied');
    replaceFile(file, SAMPLE_TEXT.replace('hmacSecret: { $env: CDP_SAMPLE_HMAC_SECRET }', `hmacSecret: ${HMAC}`));
    expect(await store.check()).toBe('rejected');
    // Even a careless log call by a service is masked, because the loader registered the value.
    logs.logger.info({ settings: store.current().destination('hook')?.settings }, 'debugging');

    expect(logs.lines.length).toBeGreaterThanOrEqual(4);
    for (const line of logs.lines) expect(line).not.toContain(HMAC);
    expect(JSON.stringify(store.current().redactedView())).not.toContain(HMAC);
  });

  it('stops polling on close', async () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT);
    const { store } = open(file);
    const first = store.current();
    store.close();
    let changed = false;
    store.on('change', () => {
      changed = true;
    });
    replaceFile(file, SAMPLE_TEXT.replace('name: Main', 'name: Main 3'));
    await new Promise((r) => setTimeout(r, 100));
    expect(changed).toBe(false);
    expect(store.current()).toBe(first);
  });

  it('reports a deleted file as rejected and keeps the version in force', async () => {
    const file = join(dir, 'workspace.yaml');
    writeFileSync(file, SAMPLE_TEXT);
    const { store } = open(file, { pollIntervalMs: 0 });
    const first = store.current();
    rmSync(file);
    expect(await store.check()).toBe('rejected');
    expect(await store.check()).toBe('unchanged');
    expect(store.current()).toBe(first);
    writeFileSync(file, SAMPLE_TEXT);
    expect(await store.check()).toBe('unchanged');
  });
});
