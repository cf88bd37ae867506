export { ConsulSession, type ConsulSessionEvents, type ConsulSessionOptions, type SessionClient, type SessionState } from './session';
export { ConsulLock, type ConsulLockEvents, type LockLostReason, type LockState } from './lock';
export { LeaderElection, type LeaderElectionEvents, type LeaderElectionOptions } from './leader';
