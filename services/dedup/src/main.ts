// dedup's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { dedup } from './build';

runMain(dedup, __dirname);
