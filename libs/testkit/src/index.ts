export { requireEnv, testSize } from './env';
export { restartKafkaBroker, startKafkaBroker, stopKafkaBroker, type KafkaBroker, type SaslListeners } from './kafka-broker';
export { startMariaDbServer, type MariaDbServer } from './mariadb-server';
export {
  createTestDatabase,
  mysqlUrl,
  rowChangingStatements,
  splitSqlStatements,
  statementsAgainst,
  sweepTestDatabases,
  withConnection,
  type TestDatabase,
} from './mysql';
export { freePort, canConnect } from './ports';
export { sleep } from '@cdp/lifecycle';
export { isAlive, spawnDaemon, stopProcess, type ManagedProcess } from './process';
export { currentRunId, newRunId, runAgeMs, testDatabaseName, testTopicPrefix, uniqueSuffix } from './run-id';
export { startInfra, stopInfra, type InfraState } from './infra';
export { resolveJars } from './maven';
export { REPO_ROOT } from './paths';
export { cpuSeconds, peakRssBytes, rssBytes, sampleRss } from './proc-stats';
export { startDynamoDbLocal, LOCAL_AWS_ENV } from './dynamodb-local';
export { startS3Proxy, localS3ClientConfig, S3_TEST_BUCKET } from './s3proxy';
export { helm } from './helm';
export { startServiceProcess, waitServiceExit, waitServiceReady, type ServiceProcess, type ServiceProcessOptions } from './service-process';
export { percentile } from './stats';
export { waitFor } from './wait-for';
export { metricSamples, metricValue } from './metrics-text';
export { logLines, type LogLine } from './log-lines';
export { HttpSink, type HttpSinkOptions, type SinkAnswer, type SinkHandler, type SinkRequest } from './http-sink';
export { readSinkLines, sinkLine, startSampleSink, type SinkLine } from './sample-sink';
export {
  DEFAULT_CHROMIUM_PATH,
  SCREENSHOT_DIR,
  isLoopbackUrl,
  launchChromium,
  saveScreenshot,
  type ChromiumOptions,
  type ChromiumPageOptions,
  type LaunchedChromium,
} from './chromium';
export { makeTestCertificates, type TestCertificates } from './test-ca';
