import { spawnSync } from 'node:child_process';
import path from 'node:path';

const FIXTURE = path.join(__dirname, '..', 'dist', 'fixtures', 'start-service.js');

function start(env: Record<string, string>) {
  return spawnSync(process.execPath, [FIXTURE], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
}

describe('service start-up with bad configuration (real process)', () => {
  it('stops with exit 1 naming a missing variable', () => {
    const r = start({});
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('KAFKA_BROKERS: is required');
    expect(r.stdout).not.toContain('STARTED');
  });
  it('stops naming a malformed variable', () => {
    const r = start({ KAFKA_BROKERS: '127.0.0.1:9092', OPS_PORT: '99999' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/OPS_PORT: /);
  });
  it('starts with a valid environment', () => {
    const r = start({ KAFKA_BROKERS: '127.0.0.1:9092' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('STARTED 127.0.0.1:9092');
  });
});
