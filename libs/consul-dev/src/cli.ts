import { startConsulDevServer, type ConsulDevServerOptions } from './server';

const USAGE = `usage: node dist/cli.js [--host 127.0.0.1] [--port 8500] [--min-ttl-ms 10000]
                          [--ttl-multiplier 2] [--default-lock-delay-ms 15000] [--node-name cdp-consul-dev]`;

/** Parses `--flag value` and `--flag=value`; numbers must be finite. */
export function parseArgs(argv: string[]): ConsulDevServerOptions {
  const options: ConsulDevServerOptions = {};
  const num = (flag: string, value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag} needs a number, got "${value}"`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') throw new Error(USAGE);
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    let value: string;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value\n${USAGE}`);
      value = argv[++i];
    }
    switch (flag) {
      case '--host':
        options.host = value;
        break;
      case '--port':
        options.port = num(flag, value);
        break;
      case '--min-ttl-ms':
        options.minTtlMs = num(flag, value);
        break;
      case '--ttl-multiplier':
        options.ttlMultiplier = num(flag, value);
        break;
      case '--default-lock-delay-ms':
        options.defaultLockDelayMs = num(flag, value);
        break;
      case '--node-name':
        options.nodeName = value;
        break;
      default:
        throw new Error(`unknown flag ${flag}\n${USAGE}`);
    }
  }
  return options;
}

async function main(): Promise<void> {
  let options: ConsulDevServerOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const server = await startConsulDevServer(options);
  // Harness scripts wait for exactly this line.
  console.log(`consul-dev listening on ${server.url}`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`consul-dev: close after ${signal} failed:`, error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error('consul-dev failed to start:', error);
    process.exit(1);
  });
}
