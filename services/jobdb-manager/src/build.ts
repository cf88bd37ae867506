import { mysqlConnectionUrl } from '@cdp/config';
import { createConsulClient, ConsulKeys } from '@cdp/consul';
import { startAdminServer, type RunningServer } from '@cdp/http';
import type { BuiltService, ServiceDefinition, ServiceDeps } from '@cdp/service';
import { managerAdminRoutes, PAGE_DIR } from './admin';
import { catalogRoutes } from './catalog';
import { managerEnv, type ManagerConfig } from './config';
import { DeliveryStatus } from './delivery';
import { createManagerService } from './service';

/**
 * jobdb-manager from its config: the Consul client, the manager (migrations, election, passes)
 * and the admin server (JobDB list, destination controls, Event Delivery API and page).
 */
export async function build(config: ManagerConfig, { logger }: ServiceDeps): Promise<BuiltService> {
  const consul = createConsulClient(config.CONSUL_HTTP_ADDR, { token: config.CONSUL_HTTP_TOKEN });
  // Every MySQL connection of the manager opens from MYSQL_URL: give it the TLS settings.
  const mysqlUrl = mysqlConnectionUrl(config);
  const service = createManagerService({ ...config, MYSQL_URL: mysqlUrl }, { consul, logger });
  const delivery = new DeliveryStatus(mysqlUrl, config.CDP_CONTROL_DB);
  let admin: RunningServer | undefined;
  return {
    // Migrates cdp_control, then joins the election; a standby is ready too (it takes over when the leader goes).
    start: async () => {
      await service.start();
      admin = await startAdminServer({
        service: 'jobdb-manager',
        port: config.ADMIN_PORT,
        token: config.ADMIN_TOKEN,
        logger,
        assets: [{ path: '/', dir: PAGE_DIR }],
        routes: (app) => {
          managerAdminRoutes({ consul, keys: new ConsulKeys(config.CDP_CONSUL_PREFIX), mysqlUrl, delivery, logger })(app);
          catalogRoutes(app);
        },
      });
      return { pod: config.POD_NAME, adminPort: admin.port };
    },
    readiness: [],
    shutdown: {
      stopInputs: { admin: () => admin?.close() },
      // Stops acting and releases the leader key, so the standby takes over without lock delay.
      drain: { manager: () => service.stop() },
      closeClients: { 'consul-client': () => consul.close(), 'control-db': () => delivery.close() },
    },
  };
}

export const jobDbManager: ServiceDefinition<ManagerConfig> = { name: 'jobdb-manager', env: managerEnv, build };
