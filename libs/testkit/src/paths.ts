import fs from 'node:fs';
import path from 'node:path';

function findRepoRoot(start: string): string {
  let dir = start;
  while (!fs.existsSync(path.join(dir, 'pnpm-workspace.yaml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no pnpm-workspace.yaml above ${start}`);
    dir = parent;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot(__dirname);

// The AWS SDK v3 warns on every process that future releases need Node 22; our versions are
// pinned in the lockfile, so the notice is noise in every harness run.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
/** Downloaded jars and other fetched artifacts; ignored by git, kept between runs. */
export const CACHE_DIR = path.join(REPO_ROOT, '.cache');
/** State of the dependencies started by `pnpm infra up`: `env` and `state.json`. */
export const INFRA_DIR = process.env.CDP_INFRA_DIR ?? path.join(REPO_ROOT, '.infra');
/** The poms that name what each Java dependency needs (same path from src/ and dist/). */
export const MAVEN_DIR = path.join(__dirname, '..', 'maven');
