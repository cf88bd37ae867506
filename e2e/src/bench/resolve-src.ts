// The e2e harness (src/testing/chain.ts) imports services' test helpers by their source path
// (`@cdp/director/src/testing/harness`), which jest compiles on the fly. A bench runs the built
// JavaScript under plain node, so such a request is resolved to the package's built twin
// (`<package>/dist/testing/harness.js`, which `tsc -b` writes). Imported first by each bench.
import Module from 'node:module';
import path from 'node:path';

type Resolve = (request: string, ...rest: unknown[]) => string;
const loader = Module as unknown as { _resolveFilename: Resolve };
const resolve = loader._resolveFilename;

loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  const match = /^(@cdp\/[^/]+)\/src\/(.+)$/.exec(request);
  if (match) {
    const root = path.dirname(require.resolve(`${match[1]}/package.json`));
    return resolve.call(this, path.join(root, 'dist', match[2]), ...rest);
  }
  return resolve.call(this, request, ...rest);
};
