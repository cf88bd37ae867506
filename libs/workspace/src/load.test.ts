import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '@cdp/log';
import { stringify } from 'yaml';
import { loadWorkspaceFile, parseWorkspace, redactedView, WorkspaceConfigError, type Workspace } from './index';

const SAMPLE = resolve(__dirname, '../../../config/workspace.sample.yaml');
const HMAC = 'sample-hmac-secret-value-1234';

// Test documents are edited one field at a time through arbitrary paths.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

let dir: string;
beforeAll(() => {
  process.env.CDP_SAMPLE_HMAC_SECRET = HMAC;
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-workspace-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A small valid workspace document; tests break one thing at a time. */
function baseDoc(): Record<string, Loose> {
  return {
    spaces: [{ id: 'main', name: 'Main' }],
    sources: [
      { id: 'web', name: 'Web', spaceId: 'main', writeKeys: ['wk_web_1'] },
      { id: 'server', name: 'Server', spaceId: 'main', writeKeys: ['wk_server_1'] },
    ],
    destinations: [
      { id: 'hook', name: 'Hook', type: 'webhook', settings: { url: 'http://127.0.0.1:9999/hook' } },
      { id: 'off', name: 'Disabled', type: 'webhook', enabled: false, settings: { url: 'https://example.com/x' } },
    ],
    connections: [
      { sourceId: 'web', destinationId: 'hook' },
      { sourceId: 'web', destinationId: 'off' },
      { sourceId: 'server', destinationId: 'hook', enabled: false },
    ],
  };
}

function writeDoc(doc: unknown, name = 'workspace.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, name.endsWith('.json') ? JSON.stringify(doc) : stringify(doc));
  return file;
}

function loadError(doc: unknown, env: NodeJS.ProcessEnv = process.env): WorkspaceConfigError {
  const file = writeDoc(doc);
  try {
    loadWorkspaceFile(file, { env });
  } catch (error) {
    expect(error).toBeInstanceOf(WorkspaceConfigError);
    const e = error as WorkspaceConfigError;
    expect(e.message.startsWith(`workspace ${file}: `)).toBe(true);
    return e;
  }
  throw new Error('expected the workspace to be rejected');
}

describe('loading the sample workspace', () => {
  let ws: Workspace;
  beforeAll(() => {
    ws = loadWorkspaceFile(SAMPLE);
  });

  it('loads with defaults applied and secrets resolved', () => {
    expect(ws.summary()).toEqual({
      spaces: 1,
      sources: 2,
      writeKeys: 3,
      destinations: 2,
      enabledDestinations: 2,
      connections: 3,
      secretReferences: 1,
    });
    const hook = ws.destination('hook');
    expect(hook?.kind).toBe('webhook');
    if (hook?.kind !== 'webhook') throw new Error('unreachable');
    expect(hook.settings.hmacSecret).toBe(HMAC);
    expect(hook.settings.url).toBe('http://127.0.0.1:9999/hook');
    // A webhook without subscriptions gets the implicit one, so every service agrees on its id.
    expect(hook.subscriptions.map((s) => s.id)).toEqual(['default']);
    expect(ws.destination('audit')?.limits).toEqual({ maxConcurrency: 5, retryWindowMs: 3_600_000 });
    expect(ws.source('web')?.rateLimit).toEqual({ eventsPerSecond: 1000, burst: 2000 });
    expect(ws.source('server')?.transformations).toEqual([]);
    const plan = ws.source('web')?.trackingPlan;
    expect(plan?.enforcement).toEqual({
      unplannedEvents: 'allow',
      unplannedProperties: 'allow',
      violations: 'omit',
      unplannedTraits: 'allow',
      traitViolations: 'allow',
      commonViolations: 'allow',
    });
    expect(plan?.identify?.traits.email).toEqual({ type: 'string', format: 'email' });
    expect(plan?.common).toMatchObject({ type: 'object' });
    expect(ws.connection('web', 'audit')?.transformations.map((t) => t.id)).toEqual(['audit-no-notes']);
    expect(ws.connection('web', 'hook')?.transformations).toEqual([]);
    expect(ws.space('main')?.identity.maxMergesPerProfile).toBe(100);
    expect(ws.version).toMatch(/^[0-9a-f]{16}$/);
    expect(ws.loadedAt).toBeInstanceOf(Date);
  });

  it('looks up sources by write key and destinations by source', () => {
    expect(ws.sourceByWriteKey('wk_web_sample_0002')?.id).toBe('web');
    expect(ws.sourceByWriteKey('nope')).toBeUndefined();
    expect(ws.destinationsForSource('web').map((d) => d.id)).toEqual(['hook', 'audit']);
    expect(ws.destinationsForSource('server').map((d) => d.id)).toEqual(['hook']);
    expect(ws.destinationsForSource('unknown')).toEqual([]);
    expect(ws.sourcesInSpace('main').map((s) => s.id)).toEqual(['web', 'server']);
  });

  it('is immutable', () => {
    expect(() => {
      (ws.config.sources[0] as { name: string }).name = 'changed';
    }).toThrow(TypeError);
  });

  it('shows secret references, never values, in the redacted view', () => {
    const view = redactedView(ws.config) as Loose;
    expect(view.destinations[0].settings.hmacSecret).toEqual({ $env: 'CDP_SAMPLE_HMAC_SECRET' });
    expect(JSON.stringify(view)).not.toContain(HMAC);
    expect(JSON.stringify(ws.redactedView())).not.toContain(HMAC);
    expect(ws.secretPaths.get('destinations[0].settings.hmacSecret')).toEqual({ $env: 'CDP_SAMPLE_HMAC_SECRET' });
    // The config itself is untouched.
    expect((ws.config.destinations[0].settings as { hmacSecret?: string }).hmacSecret).toBe(HMAC);
  });

  it('refuses to redact a config it did not produce', () => {
    expect(() => redactedView(JSON.parse(JSON.stringify(ws.config)))).toThrow(/not produced by the workspace loader/);
  });

  it('masks resolved secrets in every log line', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    createLogger({ name: 't', destination }).info({ detail: ws.config.destinations[0] }, `oops ${HMAC}`);
    expect(lines.join('')).not.toContain(HMAC);
    expect(lines.join('')).toContain('[REDACTED]');
  });
});

describe('lookups', () => {
  it('leaves out disabled connections and disabled destinations', () => {
    const ws = loadWorkspaceFile(writeDoc(baseDoc()));
    expect(ws.destinationsForSource('web').map((d) => d.id)).toEqual(['hook']);
    expect(ws.destinationsForSource('server')).toEqual([]);
    expect(ws.connectionsForSource('server')).toHaveLength(1);
    expect(ws.connection('web', 'off')?.enabled).toBe(true);
  });

  it('reads JSON files too, with the same result', () => {
    const yaml = loadWorkspaceFile(writeDoc(baseDoc()));
    const json = loadWorkspaceFile(writeDoc(baseDoc(), 'workspace.json'));
    expect(json.config).toEqual(yaml.config);
  });

  it('versions by content', () => {
    const a = loadWorkspaceFile(writeDoc(baseDoc(), 'a.yaml'));
    const b = loadWorkspaceFile(writeDoc(baseDoc(), 'b.yaml'));
    const doc = baseDoc();
    doc.sources[0].name = 'Web 2';
    const c = loadWorkspaceFile(writeDoc(doc, 'c.yaml'));
    expect(a.version).toBe(b.version);
    expect(c.version).not.toBe(a.version);
  });
});

describe('invalid files fail with a message naming the field', () => {
  it('reports several problems at once, each with its path', () => {
    const doc = baseDoc();
    doc.sources[1].writeKeys = [];
    doc.destinations[0].settings.url = 'not a url';
    const e = loadError(doc);
    expect(e.message).toContain('sources[1].writeKeys: must contain at least one key');
    expect(e.message).toContain('destinations[0].settings.url: Invalid URL');
    expect(e.details).toHaveLength(2);
  });

  it('reports settings errors together with other errors of the same destination', () => {
    const doc = baseDoc();
    doc.destinations[0].limits = { maxConcurrency: 0 };
    doc.destinations[0].settings = { url: 'ftp://x', hmacSecret: 'literal', colour: 'red' };
    const message = loadError(doc).message;
    expect(message).toContain('destinations[0].limits.maxConcurrency:');
    expect(message).toContain('destinations[0].settings.url: Invalid URL');
    expect(message).toContain('destinations[0].settings.hmacSecret: must be a secret reference');
    expect(message).toContain('destinations[0].settings.colour: unknown field');
  });

  it('unknown key (a typo)', () => {
    const doc = baseDoc();
    doc.sources[0].writeKey = 'x';
    doc.destinations[0].settings.timeoutMS = 5;
    const e = loadError(doc);
    expect(e.message).toContain('sources[0].writeKey: unknown field');
    expect(e.message).toContain('destinations[0].settings.timeoutMS: unknown field');
  });

  it('bad source id', () => {
    const doc = baseDoc();
    doc.sources[0].id = 'web:site';
    doc.connections = [];
    expect(loadError(doc).message).toContain('sources[0].id: must match [A-Za-z0-9_-]{1,64}');
  });

  it('missing required field', () => {
    const doc = baseDoc();
    delete doc.sources[0].spaceId;
    expect(loadError(doc).message).toContain('sources[0].spaceId: is required');
  });

  it('duplicate write key across sources', () => {
    const doc = baseDoc();
    doc.sources[1].writeKeys = ['wk_server_1', 'wk_web_1'];
    expect(loadError(doc).message).toContain('sources[1].writeKeys[1]: write key already used by source "web"');
  });

  it('duplicate ids, unknown space, duplicate connection', () => {
    const doc = baseDoc();
    doc.sources[1].id = 'web';
    doc.sources[1].spaceId = 'other';
    doc.connections.push({ sourceId: 'web', destinationId: 'hook' });
    const message = loadError(doc).message;
    expect(message).toContain('sources[1].id: duplicate source id "web" (also sources[0])');
    expect(message).toContain('sources[1].spaceId: unknown space "other"');
    expect(message).toContain('connections[3]: duplicate connection web → hook');
  });

  it('connection to an unknown destination or source', () => {
    const doc = baseDoc();
    doc.connections.push({ sourceId: 'ghost', destinationId: 'nope' });
    const message = loadError(doc).message;
    expect(message).toContain('connections[3].sourceId: unknown source "ghost"');
    expect(message).toContain('connections[3].destinationId: unknown destination "nope"');
  });

  it('literal secret where a reference is required', () => {
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = 'literal-hmac-secret';
    doc.destinations[1].settings.headers = { Authorization: 'Bearer literal-token-123', 'X-Trace': 'ok' };
    doc.destinations.push({
      id: 'amp',
      name: 'Amplitude',
      type: 'actions-amplitude',
      settings: { apiKey: 'literal-api-key', region: 'EU' },
    });
    const e = loadError(doc);
    expect(e.message).toContain('destinations[0].settings.hmacSecret: must be a secret reference');
    expect(e.message).toContain('destinations[1].settings.headers.Authorization: must be a secret reference');
    expect(e.message).toContain('destinations[2].settings.apiKey: must be a secret reference');
    expect(e.details).toHaveLength(3);
    // The rejected literal is not echoed back.
    for (const literal of ['literal-hmac-secret', 'literal-token-123', 'literal-api-key']) expect(e.message).not.toContain(literal);
  });

  it('malformed secret reference', () => {
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = { $env: 'BAD-NAME' };
    doc.destinations[1].settings.hmacSecret = { $env: 'A', $file: '/x' };
    const message = loadError(doc).message;
    expect(message).toContain('destinations[0].settings.hmacSecret: $env must name an environment variable');
    expect(message).toContain(
      'destinations[1].settings.hmacSecret: a secret reference ({ $env: NAME } or { $file: /path }) has exactly one key',
    );
  });

  it('missing env var names the field and the reference', () => {
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = { $env: 'CDP_TEST_UNSET_SECRET' };
    const e = loadError(doc, {});
    expect(e.message).toContain('destinations[0].settings.hmacSecret: environment variable CDP_TEST_UNSET_SECRET is not set ($env)');
  });

  it('action destinations need action and subscribe on each subscription', () => {
    const doc = baseDoc();
    doc.destinations.push({
      id: 'amp',
      name: 'Amplitude',
      type: 'actions-amplitude',
      settings: { apiKey: { $env: 'AMP_KEY' } },
      subscriptions: [{ id: 's1', name: 'Track' }],
    });
    const message = loadError(doc, { AMP_KEY: 'amp-key-value' }).message;
    expect(message).toContain('destinations[2].subscriptions[0].subscribe: is required for action destinations');
    expect(message).toContain('destinations[2].subscriptions[0].action: is required for action destinations');
  });

  it('bad FQL, unknown transformation type, bad enforcement value', () => {
    const doc = baseDoc();
    doc.destinations[0].filters = { rules: [{ name: 'x', if: 'type = "track" and (event = "A"', actions: [{ type: 'drop' }] }] };
    doc.sources[0].transformations = [{ type: 'uppercase_event' }];
    // `drop` was this schema's word before Segment's `block`.
    doc.sources[0].trackingPlan = { enforcement: { unplannedEvents: 'drop' }, common: { type: 'objekt' } };
    const message = loadError(doc).message;
    expect(message).toContain('sources[0].trackingPlan.common: invalid JSON Schema (draft-07):');
    expect(message).toContain("destinations[0].filters.rules[0].if: invalid FQL: missing ')'");
    expect(message).toContain('sources[0].transformations[0].type: must be one of: rename_event');
    expect(message).toContain('sources[0].trackingPlan.enforcement.unplannedEvents:');
  });

  it('invalid YAML names the line without quoting the file', () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, 'sources:\n  - id: web\n    name: [unclosed\n    hmacSecret: should-not-appear\n');
    expect(() => loadWorkspaceFile(file)).toThrow(/invalid YAML at line \d+, column \d+/);
    try {
      loadWorkspaceFile(file);
    } catch (error) {
      expect((error as Error).message).not.toContain('should-not-appear');
    }
  });

  it('invalid JSON names the position without quoting the file', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{"spaces": [],\n "sources": not-json-secret}');
    let message = '';
    try {
      loadWorkspaceFile(file);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^workspace .*broken\.json: invalid JSON/);
    expect(message).not.toContain('json-se');
    expect(message).not.toContain('sources');
  });

  it('empty file, unknown extension, missing file', () => {
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '# nothing\n');
    expect(() => loadWorkspaceFile(empty)).toThrow(/empty\.yaml: the file is empty/);
    expect(() => loadWorkspaceFile(join(dir, 'w.toml'))).toThrow(/unsupported file extension/);
    expect(() => loadWorkspaceFile(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read file \(ENOENT\)/);
  });

  it('duplicate keys in YAML are an error', () => {
    const file = join(dir, 'dup.yaml');
    writeFileSync(file, 'spaces: []\nspaces: []\n');
    expect(() => loadWorkspaceFile(file)).toThrow(/invalid YAML .*unique/);
  });
});

describe('secret references', () => {
  it('resolves $file (absolute or relative to the workspace file), trimming one trailing newline', () => {
    writeFileSync(join(dir, 'hmac'), 'file-hmac-secret\n\n');
    writeFileSync(join(dir, 'token'), 'file-token-value\n');
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = { $file: join(dir, 'hmac') };
    doc.destinations[0].settings.headers = { Authorization: { $file: 'token' } };
    const ws = loadWorkspaceFile(writeDoc(doc));
    const hook = ws.destination('hook');
    if (hook?.kind !== 'webhook') throw new Error('expected a webhook');
    expect(hook.settings.hmacSecret).toBe('file-hmac-secret\n');
    expect(hook.settings.headers.Authorization).toBe('file-token-value');
    expect(ws.secretFiles).toEqual(expect.arrayContaining([join(dir, 'hmac'), join(dir, 'token')]));
    const view = JSON.stringify(ws.redactedView());
    expect(view).toContain(`{"$file":"token"}`);
    expect(view).not.toContain('file-token-value');
    expect(view).not.toContain('file-hmac-secret');
  });

  it('an unreadable $file names the field and the file', () => {
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = { $file: '/nonexistent/cdp/hmac' };
    expect(loadError(doc).message).toContain(
      'destinations[0].settings.hmacSecret: cannot read secret file /nonexistent/cdp/hmac ($file): ENOENT',
    );
  });

  it('write keys may be references; duplicates are found after resolution without echoing the key', () => {
    const doc = baseDoc();
    doc.sources[1].writeKeys = [{ $env: 'SERVER_WRITE_KEY' }];
    const ws = loadWorkspaceFile(writeDoc(doc), { env: { SERVER_WRITE_KEY: 'wk_server_from_env' } });
    expect(ws.sourceByWriteKey('wk_server_from_env')?.id).toBe('server');
    const e = loadError(doc, { SERVER_WRITE_KEY: 'wk_web_1' });
    expect(e.message).toContain('sources[1].writeKeys[0]: write key already used by source "web"');
  });

  it('masks values copied into non-secret fields of the redacted view', () => {
    const doc = baseDoc();
    doc.destinations[0].settings.hmacSecret = { $env: 'H' };
    doc.destinations[0].subscriptions = [{ id: 's', name: 'S', mapping: { note: 'copied-secret-value' } }];
    const ws = parseWorkspace(stringify(doc), { format: 'yaml', env: { H: 'copied-secret-value' } });
    const view = ws.redactedView() as Loose;
    expect(view.destinations[0].subscriptions[0].mapping.note).toBe('[REDACTED]');
    expect(view.destinations[0].settings.hmacSecret).toEqual({ $env: 'H' });
  });
});
