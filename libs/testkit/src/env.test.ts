import { testSize } from './env';

describe('testSize', () => {
  const name = 'CDP_TESTKIT_ENV_TEST_SIZE';
  afterEach(() => {
    delete process.env[name];
  });

  it('is the fallback when the variable is unset or empty', () => {
    expect(testSize(name, 4)).toBe(4);
    process.env[name] = ' ';
    expect(testSize(name, 4)).toBe(4);
  });

  it('reads a number the variable gives', () => {
    process.env[name] = '200';
    expect(testSize(name, 4)).toBe(200);
    process.env[name] = '2.5';
    expect(testSize(name, 4, { min: 2 })).toBe(2.5);
  });

  it('refuses what is not a positive number, or below the minimum', () => {
    process.env[name] = 'lots';
    expect(() => testSize(name, 4)).toThrow(`${name}=lots: expected a positive number`);
    process.env[name] = '0';
    expect(() => testSize(name, 4)).toThrow(`${name}=0: expected a positive number`);
    process.env[name] = '1';
    expect(() => testSize(name, 4, { min: 2 })).toThrow(`${name}=1: expected a positive number of at least 2`);
  });
});
