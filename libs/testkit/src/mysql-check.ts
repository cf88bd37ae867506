import { mysqlUrl, sweepTestDatabases, withConnection } from './mysql';

/** Verifies the machine's MariaDB answers and sweeps stale test databases; returns its URL. */
export async function checkMysqlReachable(): Promise<string> {
  const url = mysqlUrl();
  try {
    await withConnection(url, (conn) => conn.query('SELECT 1'));
  } catch (error) {
    throw new Error(`MariaDB/MySQL not reachable at ${url.replace(/:[^:@/]*@/, ':***@')}: ${(error as Error).message}`, { cause: error });
  }
  await sweepTestDatabases(url);
  return url;
}
