// What the Kafka commands (cdp-topics, cdp-dlq) share: results on stdout, problems, progress
// and logs on stderr; exit 2 on a usage or configuration error (with the usage text), 1 on a
// failure.
import { ConfigError } from '@cdp/config';
import { createLogger, type Logger } from '@cdp/log';

export class UsageError extends Error {}

export const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
export const err = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** kafkajs's own lines, on stderr so stdout stays the command's result. */
export function cliLogger(name: string, level: string): Logger {
  return createLogger({ name, level, destination: { write: (line: string) => process.stderr.write(line) } });
}

/** Runs a command's main and exits with its code once stdout is flushed. */
export function runCli(name: string, usage: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.stdout.write('', () => process.exit(code)),
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      const misuse = error instanceof UsageError || error instanceof ConfigError;
      err(misuse ? `${message}\n${usage}` : `${name}: ${message}`);
      process.exit(misuse ? 2 : 1);
    },
  );
}
