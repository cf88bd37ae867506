import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { CACHE_DIR, MAVEN_DIR } from './paths';

const run = promisify(execFile);

// Maven 3.8's default binding is the ancient 2.8; name the plugin with a full version.
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

/**
 * Resolves the runtime classpath described by `maven/<name>/pom.xml` from Maven Central into
 * `.cache/jars/<name>-<pom hash>/` (once; later calls reuse it) and returns that folder.
 */
export async function resolveJars(name: string): Promise<string> {
  const pom = path.join(MAVEN_DIR, name, 'pom.xml');
  const hash = crypto.createHash('sha256').update(fs.readFileSync(pom)).digest('hex').slice(0, 10);
  const target = path.join(CACHE_DIR, 'jars', `${name}-${hash}`);
  if (fs.existsSync(path.join(target, '.complete'))) return target;

  const staging = `${target}.tmp-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    await run(
      'mvn',
      ['-B', '-q', '-f', pom, `${DEPENDENCY_PLUGIN}:copy-dependencies`, `-DoutputDirectory=${staging}`, '-DincludeScope=runtime'],
      { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60 * 1000 },
    );
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`resolving ${name} jars from Maven Central failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: error });
  }
  fs.writeFileSync(path.join(staging, '.complete'), new Date().toISOString());
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(staging, target);
  return target;
}

/** A `java -cp` wildcard entry for a jar folder (Java expands it; no shell involved). */
export function classpath(dir: string): string {
  return `${dir}/*`;
}
