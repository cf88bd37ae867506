import { mysqlConnectionUrl } from '@cdp/config';
import { createConsulClient } from '@cdp/consul';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { managerEnv, type ManagerConfig } from './config';
import { createManagerService } from './service';

/** jobdb-manager from its config: the Consul client and the manager (migrations, election, passes). */
export async function build(config: ManagerConfig, { logger }: ServiceDeps): Promise<BuiltService> {
  const consul = createConsulClient(config.CONSUL_HTTP_ADDR);
  // Every MySQL connection of the manager opens from MYSQL_URL: give it the TLS settings.
  const service = createManagerService({ ...config, MYSQL_URL: mysqlConnectionUrl(config) }, { consul, logger });
  return {
    // Migrates cdp_control, then joins the election; a standby is ready too (it takes over when the leader goes).
    start: async () => {
      await service.start();
      return { pod: config.POD_NAME };
    },
    readiness: [],
    shutdown: {
      // Stops acting and releases the leader key, so the standby takes over without lock delay.
      drain: { manager: () => service.stop() },
      closeClients: { 'consul-client': () => consul.close() },
    },
  };
}

export const jobDbManager: ServiceDefinition<ManagerConfig> = { name: 'jobdb-manager', env: managerEnv, build };
