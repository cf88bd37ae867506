// `pnpm infra up [components]` / `pnpm infra down` / `pnpm infra status`; `drop-stack-databases`
// (the local stack runs it at start); `sink <port> <file>`, the local stack's sample sink (until SIGTERM/SIGINT).
import { ALL_COMPONENTS } from './components';
import { infraDown, infraUp, readLiveInfra } from './infra';
import { dropStackDatabases } from './mysql';
import { INFRA_DIR } from './paths';
import { startSampleSink } from './sample-sink';

async function main(argv: string[]): Promise<number> {
  const [command, components] = argv;
  switch (command) {
    case 'up': {
      const { state, reused } = await infraUp(components ?? process.env.CDP_INFRA_COMPONENTS);
      console.log(reused ? 'infra already running:' : 'infra up:');
      for (const [k, v] of Object.entries(state.env)) console.log(`  ${k}=${v}`);
      console.log(`written to ${INFRA_DIR}/env`);
      return 0;
    }
    case 'down': {
      const state = await infraDown();
      console.log(state ? `infra down: stopped ${state.processes.length} process(es)` : 'infra down: nothing was running');
      return 0;
    }
    case 'status': {
      const state = readLiveInfra();
      if (!state) {
        console.log('infra: not running');
        return 1;
      }
      for (const p of state.processes) console.log(`  ${p.name} pid ${p.pid} log ${p.logFile}`);
      for (const [k, v] of Object.entries(state.env)) console.log(`  ${k}=${v}`);
      return 0;
    }
    case 'drop-stack-databases': {
      const dropped = await dropStackDatabases();
      if (dropped.length > 0) console.log(`dropped ${dropped.length} database(s) of an earlier local stack: ${dropped.join(', ')}`);
      return 0;
    }
    case 'sink': {
      const [port, file] = argv.slice(1);
      if (!port || !file) break;
      const sink = await startSampleSink(file, Number(port));
      console.log(`sample sink: ${sink.url} (every request appended to ${file})`);
      await new Promise((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await sink.close();
      return 0;
    }
  }
  console.error(`usage: infra up [${ALL_COMPONENTS.join(',')}|kafka2,...] | down | status | drop-stack-databases | sink <port> <file>`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
