import { spawn } from 'node:child_process';
import path from 'node:path';
import { requireEnv } from '@cdp/testkit';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs one of this package's built commands (`dist/<script>`) as a process, as an operator
 * would: its environment is PATH, the harness's KAFKA_BROKERS and `env`, nothing else.
 */
export function runKafkaCli(script: string, args: string[], env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'dist', script), ...args], {
      env: { PATH: process.env.PATH, KAFKA_BROKERS: requireEnv('KAFKA_BROKERS'), ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
