import { parseComponents } from './components';
import { killInfraNow, readLiveInfra, startInfra, stopInfra, type InfraState } from './infra';

const KEY = '__cdpOwnedInfra';
type Holder = { [KEY]?: InfraState };

/**
 * Jest globalSetup: reuse the dependencies of a running `pnpm infra up` (as scripts/test.sh
 * does), or start the ones this project needs and own them until globalTeardown. Env vars
 * set here are inherited by the test workers, which jest forks afterwards.
 */
export async function setupForJest(): Promise<void> {
  const live = readLiveInfra();
  if (live) {
    Object.assign(process.env, live.env);
    return;
  }
  const state = await startInfra(parseComponents(process.env.CDP_INFRA_COMPONENTS));
  Object.assign(process.env, state.env);
  (globalThis as Holder)[KEY] = state;
  // Interrupted runs (Ctrl-C, a killed jest) must not leave brokers behind.
  process.once('exit', () => killInfraNow(state));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killInfraNow(state);
      process.exit(130);
    });
  }
}

export async function teardownForJest(): Promise<void> {
  const state = (globalThis as Holder)[KEY];
  if (state) {
    delete (globalThis as Holder)[KEY];
    await stopInfra(state);
  }
}
