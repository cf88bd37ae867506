// MYSQL_SSL reaches the connection: mysqlConnectionUrl (libs/config) puts the TLS settings into
// the URL every JobDB and control-database function opens. The harness's MariaDB has TLS
// disabled, so a client that asks for TLS must be refused, and one that does not must connect.
import { checkMysqlEnv, loadConfig, mysqlConnectionUrl, mysqlEnv, z } from '@cdp/config';
import { mysqlUrl } from '@cdp/testkit';
import { controlSchemaVersion } from './control';

const schema = z.object(mysqlEnv).superRefine(checkMysqlEnv);
// Never created: controlSchemaVersion answers null for a database that does not exist.
const database = `cdp_t_tls_absent_${process.pid}`;

describe('MySQL TLS settings', () => {
  it('connects in plaintext without MYSQL_SSL', async () => {
    const url = mysqlConnectionUrl(loadConfig(schema, { MYSQL_URL: mysqlUrl() }));
    await expect(controlSchemaVersion(url, database)).resolves.toBeNull();
  });

  it('asks for TLS with MYSQL_SSL=true and fails against a server without it', async () => {
    const url = mysqlConnectionUrl(loadConfig(schema, { MYSQL_URL: mysqlUrl(), MYSQL_SSL: 'true' }));
    await expect(controlSchemaVersion(url, database)).rejects.toThrow(/does not support secure connection/);
  });
});
