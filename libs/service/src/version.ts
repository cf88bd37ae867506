import fs from 'node:fs';
import path from 'node:path';

/**
 * The `version` of the nearest package.json at or above `dir`: a service passes its own
 * directory (dist/ in the image, next to the package.json `pnpm deploy` ships). It is read at
 * run time because `npm_package_version` is only set when npm or pnpm starts the process, and
 * the image runs node directly.
 */
export function packageVersion(dir: string): string {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const file = path.join(current, 'package.json');
    if (fs.existsSync(file)) {
      const { version } = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown };
      if (typeof version !== 'string' || version === '') throw new Error(`${file} has no version`);
      return version;
    }
    if (path.dirname(current) === current) throw new Error(`no package.json at or above ${dir}`);
  }
}
