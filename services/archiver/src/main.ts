// The archiver's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { archiver } from './build';

runMain(archiver, __dirname);
