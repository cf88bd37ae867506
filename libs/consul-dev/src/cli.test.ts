import { parseArgs } from './cli';
import { decodeSessionCreate } from './server';

describe('consul-dev CLI flags', () => {
  it('parses both --flag value and --flag=value', () => {
    expect(
      parseArgs(['--host', '0.0.0.0', '--port=8500', '--min-ttl-ms', '500', '--ttl-multiplier=1', '--default-lock-delay-ms', '0']),
    ).toEqual({ host: '0.0.0.0', port: 8500, minTtlMs: 500, ttlMultiplier: 1, defaultLockDelayMs: 0 });
  });

  it('rejects unknown flags and non-numbers', () => {
    expect(() => parseArgs(['--bogus', '1'])).toThrow(/unknown flag --bogus/);
    expect(() => parseArgs(['--port', 'x'])).toThrow(/--port needs a number/);
    expect(() => parseArgs(['--port'])).toThrow(/needs a value/);
  });
});

describe('decodeSessionCreate', () => {
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));

  it('reads keys case-insensitively and converts LockDelay like Consul', () => {
    expect(decodeSessionCreate(body({ name: 'n', TTL: '10s', lockdelay: '1s', BEHAVIOR: 'delete' }))).toEqual({
      name: 'n',
      ttl: '10s',
      lockDelayNs: 1_000_000_000n,
      behavior: 'delete',
    });
    expect(decodeSessionCreate(body({ LockDelay: 5 })).lockDelayNs).toBe(5_000_000_000n);
    expect(decodeSessionCreate(body({ LockDelay: '500ns' })).lockDelayNs).toBe(500_000_000_000n);
    expect(decodeSessionCreate(body({ LockDelay: 2_000_000_000 })).lockDelayNs).toBe(2_000_000_000n);
    expect(decodeSessionCreate(body({ LockDelay: '0s' })).lockDelayNs).toBe(0n);
  });

  it('keeps an explicit empty Checks list (drops the serfHealth default)', () => {
    expect(decodeSessionCreate(body({ Checks: [] })).checks).toEqual([]);
    expect(decodeSessionCreate(Buffer.alloc(0))).toEqual({});
  });

  it('answers 400 for undecodable bodies', () => {
    expect(() => decodeSessionCreate(Buffer.from('{'))).toThrow(/Request decode failed/);
    expect(() => decodeSessionCreate(body({ TTL: 10 }))).toThrow(/Request decode failed/);
    expect(() => decodeSessionCreate(body({ LockDelay: 'soon' }))).toThrow('Request decode failed: time: invalid duration "soon"');
  });
});
