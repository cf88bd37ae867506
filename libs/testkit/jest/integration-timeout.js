// `testTimeout` is not honoured per project in a multi-project config; set it per file here.
jest.setTimeout(Number(process.env.CDP_TEST_TIMEOUT_MS ?? 120000));
