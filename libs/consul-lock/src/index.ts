export { createConsulClient, parseConsulAddr, type ConsulAddress } from './client';
export {
  ConsulSession,
  type ConsulSessionEvents,
  type ConsulSessionOptions,
  type SessionBehavior,
  type SessionState,
} from './session';
export { ConsulLock, type ConsulLockEvents, type LockLostReason, type LockState } from './lock';
export { durationToMs } from './duration';
export { LeaderElection, type LeaderElectionEvents, type LeaderElectionOptions } from './leader';
