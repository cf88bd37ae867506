import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { classpath, resolveJars } from './maven';
import { MAVEN_DIR } from './paths';

const run = promisify(execFile);
const LAUNCHER = path.join(MAVEN_DIR, 'helm', 'HelmCli.java');

/**
 * Runs helm (embedded via helm-java from Maven Central; no helm binary, no cluster) on a
 * chart: `deps` vendors file:// dependencies, `lint` is `helm lint --strict`, `template`
 * renders with an optional values file. Resolves with stdout; rejects with helm's messages.
 */
export async function helm(command: 'deps' | 'lint' | 'template', chart: string, valuesFile?: string): Promise<string> {
  const jars = await resolveJars('helm');
  const args = ['-XX:TieredStopAtLevel=1', '-cp', classpath(jars), LAUNCHER, command, chart, ...(valuesFile ? [valuesFile] : [])];
  try {
    const { stdout } = await run('java', args, { maxBuffer: 32 * 1024 * 1024, timeout: 120_000 });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`helm ${command} ${chart} failed: ${e.stdout ?? ''}${e.stderr ?? e.message}`, { cause: error });
  }
}
