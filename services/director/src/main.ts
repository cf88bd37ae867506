// The director's process: the service skeleton (libs/service) runs its build (build.ts).
import { runMain } from '@cdp/service';
import { director } from './build';

runMain(director, __dirname);
