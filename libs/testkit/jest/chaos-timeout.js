jest.setTimeout(Number(process.env.CDP_TEST_TIMEOUT_MS ?? 900000));
