// jobdb-manager's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { jobDbManager } from './build';

runMain(jobDbManager, __dirname);
