// tapi's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { tapi } from './build';

runMain(tapi, __dirname);
