import { createLogger } from '@cdp/log';
import { splitBatches } from './client';
import { directorRpcClientSchema } from '@cdp/config';
import { DnsDiscovery, parseServiceName, staticDiscovery } from './discovery';

const logger = createLogger({ name: 'discovery-test', level: 'silent' });

/** A resolver whose answers the test sets; every call is recorded. */
function fakeResolver() {
  const state = { answer: (): Promise<string[]> => Promise.resolve([]), calls: [] as string[] };
  const resolve4 = (host: string) => {
    state.calls.push(host);
    return state.answer();
  };
  return { state, resolve4 };
}

describe('DnsDiscovery', () => {
  it('turns every A record into a director URL on the Service port, default 8080', async () => {
    const { state, resolve4 } = fakeResolver();
    state.answer = async () => ['10.0.0.9', '10.0.0.7', '10.0.0.9'];
    const d = new DnsDiscovery({ service: 'director-rpc.cdp.svc.cluster.local', refreshMs: 60_000, logger, resolve4 });
    await d.refresh();
    expect(state.calls).toEqual(['director-rpc.cdp.svc.cluster.local']);
    expect(d.directors()).toEqual(['http://10.0.0.7:8080', 'http://10.0.0.9:8080']);
    const withPort = new DnsDiscovery({ service: 'directors:9000', refreshMs: 60_000, logger, resolve4 });
    await withPort.refresh();
    expect(state.calls.at(-1)).toBe('directors');
    expect(withPort.directors()).toEqual(['http://10.0.0.7:9000', 'http://10.0.0.9:9000']);
  });

  it('follows changes and keeps the last good set when DNS fails or answers nothing', async () => {
    const { state, resolve4 } = fakeResolver();
    const d = new DnsDiscovery({ service: 'directors', refreshMs: 60_000, logger, resolve4 });
    state.answer = async () => {
      throw Object.assign(new Error('queryA ENOTFOUND directors'), { code: 'ENOTFOUND' });
    };
    expect(await d.refresh()).toBe(false);
    expect(d.directors()).toEqual([]);
    state.answer = async () => ['10.0.0.1', '10.0.0.2'];
    expect(await d.refresh()).toBe(true);
    expect(d.directors()).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
    state.answer = async () => {
      throw Object.assign(new Error('queryA ETIMEOUT directors'), { code: 'ETIMEOUT' });
    };
    expect(await d.refresh()).toBe(false);
    expect(d.directors()).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
    state.answer = async () => [];
    expect(await d.refresh()).toBe(false);
    expect(d.directors()).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
    state.answer = async () => ['10.0.0.2', '10.0.0.3'];
    expect(await d.refresh()).toBe(true);
    expect(d.directors()).toEqual(['http://10.0.0.2:8080', 'http://10.0.0.3:8080']);
  });

  it('refreshes every refreshMs after start until stopped', async () => {
    jest.useFakeTimers();
    try {
      const { state, resolve4 } = fakeResolver();
      let n = 0;
      state.answer = async () => [`10.0.0.${++n}`];
      const d = new DnsDiscovery({ service: 'directors', refreshMs: 1_000, logger, resolve4 });
      await d.start();
      expect(d.directors()).toEqual(['http://10.0.0.1:8080']);
      await jest.advanceTimersByTimeAsync(1_000);
      expect(d.directors()).toEqual(['http://10.0.0.2:8080']);
      await jest.advanceTimersByTimeAsync(1_000);
      expect(d.directors()).toEqual(['http://10.0.0.3:8080']);
      d.stop();
      await jest.advanceTimersByTimeAsync(5_000);
      expect(state.calls).toHaveLength(3);
    } finally {
      jest.useRealTimers();
    }
  });

  it('unreachable() looks again at once, at most once per minRefreshGapMs and never twice at the same time', async () => {
    const { state, resolve4 } = fakeResolver();
    let release!: () => void;
    state.answer = () => new Promise((r) => (release = () => r(['10.0.0.5'])));
    let now = 0;
    const d = new DnsDiscovery({ service: 'directors', refreshMs: 60_000, logger, resolve4, minRefreshGapMs: 1_000, now: () => now });
    d.unreachable();
    d.unreachable(); // one lookup in flight already
    expect(state.calls).toHaveLength(1);
    release();
    await new Promise((r) => setImmediate(r));
    expect(d.directors()).toEqual(['http://10.0.0.5:8080']);
    now = 999;
    d.unreachable(); // too soon
    expect(state.calls).toHaveLength(1);
    now = 1_000;
    state.answer = async () => ['10.0.0.6'];
    d.unreachable();
    expect(state.calls).toHaveLength(2);
    await new Promise((r) => setImmediate(r));
    expect(d.directors()).toEqual(['http://10.0.0.6:8080']);
    d.stop();
    now = 5_000;
    d.unreachable(); // stopped
    expect(state.calls).toHaveLength(2);
  });

  it('refuses a malformed Service name', () => {
    expect(() => parseServiceName('http://directors', 8080)).toThrow(/host\[:port\]/);
    expect(() => parseServiceName('directors:0', 8080)).toThrow(/range/);
    expect(parseServiceName('directors.cdp:8081', 8080)).toEqual({ host: 'directors.cdp', port: 8081 });
  });
});

it('staticDiscovery trims and de-duplicates the URL list', () => {
  expect(staticDiscovery(['http://a:1/', ' http://b:2', 'http://a:1']).directors()).toEqual(['http://a:1', 'http://b:2']);
});

describe('config', () => {
  it('needs exactly one of DIRECTOR_RPC_URLS and DIRECTOR_RPC_SERVICE', () => {
    expect(directorRpcClientSchema.safeParse({}).success).toBe(false);
    expect(directorRpcClientSchema.safeParse({ DIRECTOR_RPC_URLS: 'http://a:1', DIRECTOR_RPC_SERVICE: 'directors' }).success).toBe(false);
    expect(directorRpcClientSchema.safeParse({ DIRECTOR_RPC_URLS: 'a:1' }).success).toBe(false);
    const urls = directorRpcClientSchema.parse({ DIRECTOR_RPC_URLS: 'http://127.0.0.1:1, http://127.0.0.1:2' });
    expect(urls.DIRECTOR_RPC_URLS).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    expect(urls).toMatchObject({ DIRECTOR_RPC_MAX_BATCH_JOBS: 1_000, DIRECTOR_RPC_MAX_ATTEMPTS: 6 });
    expect(directorRpcClientSchema.parse({ DIRECTOR_RPC_SERVICE: 'directors:8080' }).DIRECTOR_RPC_SERVICE).toBe('directors:8080');
  });
});

describe('splitBatches', () => {
  const body = (parts: string[]) => Buffer.byteLength(`{"jobs":[${parts.join(',')}]}`);

  it('cuts at the job count and at the body size, exactly', () => {
    const jobs = Array.from({ length: 10 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(i) }));
    expect(splitBatches(jobs, 4, 1 << 20).map((b) => [b.start, b.end])).toEqual([
      [0, 4],
      [4, 8],
      [8, 10],
    ]);
    const limit = body(jobs.slice(0, 3));
    const batches = splitBatches(jobs, 100, limit);
    expect(batches[0]).toEqual({ start: 0, end: 3, bytes: limit });
    for (const b of batches) {
      expect(b.bytes).toBe(body(jobs.slice(b.start, b.end)));
      expect(b.bytes).toBeLessThanOrEqual(limit);
    }
    expect(batches.at(-1)!.end).toBe(10);
  });

  it('sends a job larger than the limit alone', () => {
    const jobs = ['{"a":1}', JSON.stringify({ big: 'y'.repeat(100) }), '{"b":2}'];
    expect(splitBatches(jobs, 10, 50).map((b) => [b.start, b.end])).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
  });
});
