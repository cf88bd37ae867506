// Three projects per DESIGN.md: unit (no network), integration (real harness), e2e.
// Workspace libs are mapped to their TypeScript sources so tests need no prior build;
// child processes that tests spawn run the built `dist/` (scripts/test.sh builds first).
const fs = require('node:fs');
const path = require('node:path');

const moduleNameMapper = {};
for (const group of ['libs', 'services']) {
  const dir = path.join(__dirname, group);
  if (!fs.existsSync(dir)) continue;
  for (const name of fs.readdirSync(dir)) {
    if (fs.existsSync(path.join(dir, name, 'src', 'index.ts'))) {
      moduleNameMapper[`^@cdp/${name}$`] = `<rootDir>/${group}/${name}/src/index.ts`;
    }
    // A lib's test helpers (`@cdp/<name>/testing`, e.g. @cdp/kafka/testing).
    if (fs.existsSync(path.join(dir, name, 'src', 'testing', 'index.ts'))) {
      moduleNameMapper[`^@cdp/${name}/testing$`] = `<rootDir>/${group}/${name}/src/testing/index.ts`;
    }
  }
}

const shared = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: {
    '^.+\\.(t|j)s$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  moduleNameMapper,
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.cache/'],
  modulePathIgnorePatterns: ['<rootDir>/.cache/', '/dist/'],
};

module.exports = {
  projects: [
    {
      ...shared,
      displayName: 'unit',
      testMatch: ['<rootDir>/{libs,services}/**/*.test.ts'],
      testPathIgnorePatterns: [...shared.testPathIgnorePatterns, '\\.(int|e2e|chaos)\\.test\\.ts$'],
    },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/{libs,services}/**/*.int.test.ts'],
      globalSetup: '<rootDir>/libs/testkit/jest/global-setup.js',
      globalTeardown: '<rootDir>/libs/testkit/jest/global-teardown.js',
      setupFilesAfterEnv: ['<rootDir>/libs/testkit/jest/integration-timeout.js'],
    },
    {
      // Multi-process crash/kill tests on the real harness; `scripts/chaos.sh` runs them.
      ...shared,
      displayName: 'chaos',
      testMatch: ['<rootDir>/{libs,services,e2e}/**/*.chaos.test.ts'],
      globalSetup: '<rootDir>/libs/testkit/jest/global-setup.js',
      globalTeardown: '<rootDir>/libs/testkit/jest/global-teardown.js',
      setupFilesAfterEnv: ['<rootDir>/libs/testkit/jest/chaos-timeout.js'],
    },
    {
      ...shared,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/**/*.e2e.test.ts'],
      globalSetup: '<rootDir>/libs/testkit/jest/global-setup.js',
      globalTeardown: '<rootDir>/libs/testkit/jest/global-teardown.js',
      setupFilesAfterEnv: ['<rootDir>/libs/testkit/jest/e2e-timeout.js'],
    },
  ],
};
