// transform's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { transform } from './build';

runMain(transform, __dirname);
