import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from './cli';

const SAMPLE = resolve(__dirname, '../../../config/workspace.sample.yaml');
const HMAC = 'cli-test-hmac-secret-9012';

function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

let dir: string;
beforeAll(() => {
  process.env.CDP_SAMPLE_HMAC_SECRET = HMAC;
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cdp-workspace-cli-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('workspace CLI', () => {
  it('validate prints OK and a summary for a valid file', () => {
    const r = run('validate', SAMPLE);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^OK .*workspace\.sample\.yaml \(version [0-9a-f]{16}\): 1 space, 2 sources \(3 write keys\), 2 destinations/);
    expect(r.err).toBe('');
  });

  it('validate exits 1 naming the field for an invalid file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, readFileSync(SAMPLE, 'utf8').replace('destinationId: audit', 'destinationId: auditt'));
    const r = run('validate', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`INVALID workspace ${file}: connections[2].destinationId: unknown destination "auditt"`);
    expect(r.out).toBe('');
  });

  it('show prints the effective config with secrets as references', () => {
    const r = run('show', SAMPLE);
    expect(r.code).toBe(0);
    const view = JSON.parse(r.out);
    expect(view.destinations[0].settings.hmacSecret).toEqual({ $env: 'CDP_SAMPLE_HMAC_SECRET' });
    expect(view.destinations[0].limits).toEqual({ maxConcurrency: 20, maxRatePerSecond: 500 });
    expect(r.out).not.toContain(HMAC);
  });

  it('exits 2 with usage on bad arguments', () => {
    expect(run().code).toBe(2);
    expect(run('check', SAMPLE).code).toBe(2);
    expect(run('validate').err).toContain('usage:');
  });
});
