// identity's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { identity } from './build';

runMain(identity, __dirname);
