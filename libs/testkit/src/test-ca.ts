// A throwaway certificate authority and one server certificate for the given host names, made
// with the openssl CLI, so a service's HTTPS calls to real partner host names can be answered by
// a local sink (with the host names resolved to 127.0.0.1 in the client) and verified for real.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestCertificates {
  /** PEM of the CA, and a file holding it (for DIRECTOR_ACTIONS_CA_FILE, NODE_EXTRA_CA_CERTS…). */
  caPem: string;
  caFile: string;
  /** The server's key and certificate (PEM), valid for `hosts`. */
  key: string;
  cert: string;
  /** Removes the files. */
  remove(): void;
}

export function makeTestCertificates(hosts: readonly string[]): TestCertificates {
  const dir = mkdtempSync(path.join(tmpdir(), 'cdp-test-ca-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=cdp test CA',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
  );
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${hosts[0]}`, '-keyout', file('server.key'), '-out', file('server.csr'));
  writeFileSync(
    file('ext.cnf'),
    `subjectAltName=${[...hosts, '127.0.0.1'].map((h) => (/^\d/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',')}\n`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file('ext.cnf'),
    '-out',
    file('server.pem'),
  );
  return {
    caPem: readFileSync(file('ca.pem'), 'utf8'),
    caFile: file('ca.pem'),
    key: readFileSync(file('server.key'), 'utf8'),
    cert: readFileSync(file('server.pem'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
