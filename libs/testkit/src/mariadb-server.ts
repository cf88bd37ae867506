// A MariaDB server of a test's own (Debian's mariadbd, already on every machine that runs the
// shared one): its own datadir, port and socket under `dir`, so a test may kill and restart it
// without touching the shared 127.0.0.1:3306.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports';
import { withConnection } from './mysql';
import { isAlive, killNow, spawnDaemon, stopProcess, waitUntilReady, type ManagedProcess } from './process';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 60_000;

export interface MariaDbServer {
  /** `mysql://root@127.0.0.1:<port>` (root, no password, over TCP). */
  url: string;
  process: ManagedProcess;
  /** Kills it (SIGKILL: a crash, InnoDB recovers at start; SIGTERM: a clean shutdown) and starts it again on the same port and datadir. */
  restart(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Stops it and removes its directory. */
  stop(): Promise<void>;
}

export async function startMariaDbServer(options: { dir: string }): Promise<MariaDbServer> {
  const port = await freePort();
  const base = path.join(options.dir, `mariadb-${port}`);
  const dataDir = path.join(base, 'data');
  fs.mkdirSync(base, { recursive: true });
  // root@127.0.0.1 with no password (what the shared server offers), no test database.
  await run(
    'mariadb-install-db',
    [
      '--no-defaults',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      `--user=${os.userInfo().username}`,
    ],
    { timeout: 60_000 },
  );
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(base, 'mysqld.sock')}`,
    `--pid-file=${path.join(base, 'mysqld.pid')}`,
    '--skip-name-resolve',
    // mariadbd refuses to run as root unless told which user to run as.
    `--user=${os.userInfo().username}`,
    // A small server: the suite's JobDBs are tiny and the machine has 2 cores.
    '--innodb-buffer-pool-size=64M',
    '--max-connections=500',
  ];
  const url = `mysql://root@127.0.0.1:${port}`;
  const start = async () => {
    const proc = spawnDaemon('mariadbd', 'mariadbd', args, { logFile: path.join(base, 'mariadbd.log') });
    await waitUntilReady(proc, () => withConnection(url, async (conn) => (await conn.query('SELECT 1'), true)), READY_TIMEOUT_MS);
    return proc;
  };
  const server: MariaDbServer = {
    url,
    process: await start(),
    async restart(signal = 'SIGKILL') {
      const pid = server.process.pid;
      if (signal === 'SIGKILL') killNow(pid);
      await stopProcess(pid, 30_000);
      server.process = await start();
    },
    async stop() {
      if (isAlive(server.process.pid)) await stopProcess(server.process.pid, 30_000);
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
  return server;
}
