jest.setTimeout(Number(process.env.CDP_TEST_TIMEOUT_MS ?? 300000));
