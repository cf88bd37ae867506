export { requireEnv } from './env';
export { startKafkaBroker, stopKafkaBroker, type KafkaBroker } from './kafka-broker';
export { createTestDatabase, mysqlUrl, sweepTestDatabases, withConnection, type TestDatabase } from './mysql';
export { freePort, canConnect } from './ports';
export { isAlive, sleep, spawnDaemon, stopProcess, type ManagedProcess } from './process';
export { currentRunId, newRunId, runAgeMs, testDatabaseName, testTopicPrefix, uniqueSuffix } from './run-id';
export { startInfra, stopInfra, type InfraState } from './infra';
export { resolveJars } from './maven';
export { REPO_ROOT } from './paths';
