import { ConsulKeys, type ConsulClient, type LockHolder } from '@cdp/consul';
import { LeaderElection } from '@cdp/consul-lock';
import { migrateControlDatabase } from '@cdp/jobdb';
import type { Logger } from '@cdp/log';
import type { ManagerConfig } from './config';
import { JobDbManager, type ManagerSettings } from './manager';
import * as m from './metrics';
import { DeliveryStatsRetention, type RetentionSettings } from './retention';

export type JobDbManagerSettings = ManagerSettings &
  RetentionSettings &
  Pick<ManagerConfig, 'CDP_CONTROL_DB' | 'CDP_CONSUL_PREFIX' | 'JOBDB_MANAGER_SESSION_TTL_MS' | 'JOBDB_MANAGER_LOCK_DELAY_MS'>;

export interface JobDbManagerDeps {
  consul: ConsulClient;
  logger: Logger;
  now?: () => number;
}

export interface JobDbManagerService {
  leader: LeaderElection;
  manager: JobDbManager;
  retention: DeliveryStatsRetention;
  /** Migrates cdp_control, then joins the election; the leader's passes start at once. */
  start(): Promise<void>;
  /** Stops acting and gives leadership up (a standby takes over without lock delay). */
  stop(): Promise<void>;
}

export function createManagerService(settings: JobDbManagerSettings, deps: JobDbManagerDeps): JobDbManagerService {
  const logger = deps.logger;
  const keys = new ConsulKeys(settings.CDP_CONSUL_PREFIX);
  const leader = new LeaderElection({
    consul: deps.consul,
    key: keys.leader('jobdb-manager'),
    name: `jobdb-manager:${settings.POD_NAME}`,
    value: JSON.stringify({ pod: settings.POD_NAME } satisfies LockHolder),
    ttlMs: settings.JOBDB_MANAGER_SESSION_TTL_MS,
    lockDelayMs: settings.JOBDB_MANAGER_LOCK_DELAY_MS,
    retryMs: settings.JOBDB_MANAGER_INTERVAL_MS,
    logger,
  });
  leader.on('elected', () => m.isLeader.set(1));
  leader.on('deposed', () => m.isLeader.set(0));
  const manager = new JobDbManager(settings, { consul: deps.consul, keys, leader, logger, now: deps.now });
  const retention = new DeliveryStatsRetention(settings, { leader, logger, now: deps.now });
  return {
    leader,
    manager,
    retention,
    async start() {
      // Every replica migrates (serialised in MySQL): the schema is there before any leads.
      const version = await migrateControlDatabase(settings.MYSQL_URL, settings.CDP_CONTROL_DB);
      logger.info({ database: settings.CDP_CONTROL_DB, version }, 'cdp_control schema up to date');
      m.isLeader.set(0);
      manager.start();
      retention.start();
      leader.start();
    },
    async stop() {
      await manager.stop();
      await retention.stop();
      await leader.stop();
    },
  };
}
