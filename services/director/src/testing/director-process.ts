// The director under test in its own process (tests fork dist/testing/director-process.js):
// plain Node as in production, not inside the test runner's module sandbox, where every global
// lookup is slower and the runner's own work shares the event loop, both inflating the
// latencies that the fairness tests compare. argv[2] is a DirectorProcessSpec as JSON; the
// process answers { url } once ready (or { error }), { held } to 'held' (its JobDBs, whether each
// is still being rebuilt and its open jobs loaded so far), and drains and exits on
// 'stop' or SIGTERM.
import type { DirectorSettings } from '../service';
import { testDirector, testWorkspace, type WebhookSpec } from './harness';

export interface DirectorProcessSpec {
  settings: DirectorSettings;
  consulUrl: string;
  destinations: WebhookSpec[];
  sources: string[];
}

async function run(spec: DirectorProcessSpec): Promise<void> {
  const workspace = testWorkspace(spec.destinations, spec.sources);
  const director = testDirector(spec.settings, spec.consulUrl, { workspace: () => workspace });
  // SIGTERM drains like the service's main (RPC answers 503, in-flight batches are answered).
  const stop = () => void director.stop().finally(() => process.exit(0));
  process.on('message', (msg) => {
    if (msg === 'stop') stop();
    // What it holds: each JobDB with the open jobs loaded so far (rebuild progress).
    if (msg === 'held') {
      const held = director.holder
        .heldJobDbs()
        .map((h) => ({ id: h.id, state: h.state, rebuilding: h.rebuilding, openJobs: director.engine.openJobs(h.id) }));
      process.send?.({ held });
    }
  });
  process.once('SIGTERM', stop);
  await director.start();
  while (!director.isReady) await new Promise((r) => setTimeout(r, 50));
  process.send?.({ url: director.url });
}

run(JSON.parse(process.argv[2] ?? '{}') as DirectorProcessSpec).catch((error: Error) => {
  process.send?.({ error: error.message });
  process.exit(1);
});
