import { ConfigError, loadConfig } from '@cdp/config';
import { directorEnv } from './config';
import { tokenMatcher } from './rpc-auth';

const TOKEN = 'director-rpc-token-0123456789abcdef';

describe('tokenMatcher', () => {
  const matches = tokenMatcher(TOKEN);
  it.each([
    ['no header', undefined],
    ['empty', ''],
    ['another token', 'Bearer director-rpc-token-0123456789abcdeX'],
    ['a prefix of it', `Bearer ${TOKEN.slice(0, -1)}`],
    ['it plus more', `Bearer ${TOKEN}0`],
    ['another scheme', `Basic ${TOKEN}`],
    ['the bare token', TOKEN],
    ['an empty bearer', 'Bearer '],
  ])('refuses %s', (_name, header) => {
    expect(matches(header)).toBe(false);
  });
  it('accepts Bearer <token>, the scheme in any case', () => {
    expect(matches(`Bearer ${TOKEN}`)).toBe(true);
    expect(matches(`bearer ${TOKEN}`)).toBe(true);
  });
});

describe('DIRECTOR_RPC_TOKEN config', () => {
  const base = {
    MYSQL_URL: 'mysql://root@127.0.0.1:3306',
    CONSUL_HTTP_ADDR: '127.0.0.1:8500',
    CDP_WORKSPACE_FILE: '/w.json',
    KAFKA_BROKERS: '127.0.0.1:9092',
  };
  const problems = (env: NodeJS.ProcessEnv) => {
    try {
      loadConfig(directorEnv, env);
      return [];
    } catch (error) {
      return (error as ConfigError).issues;
    }
  };
  it('is required unless DIRECTOR_RPC_INSECURE_NO_TOKEN is set, and never echoed', () => {
    expect(problems(base)).toEqual([expect.stringMatching(/^DIRECTOR_RPC_TOKEN: /)]);
    expect(problems({ ...base, DIRECTOR_RPC_TOKEN: 'short' })).toEqual([expect.stringMatching(/^DIRECTOR_RPC_TOKEN: .*16/)]);
    expect(problems({ ...base, DIRECTOR_RPC_TOKEN: 'has a space in it 0123456789' }).join('\n')).not.toContain('space in it');
    expect(problems({ ...base, DIRECTOR_RPC_TOKEN: TOKEN })).toEqual([]);
    expect(problems({ ...base, DIRECTOR_RPC_INSECURE_NO_TOKEN: 'true' })).toEqual([]);
  });
});

describe('DIRECTOR_RPC_ALLOWED_HEADERS config', () => {
  const base = {
    MYSQL_URL: 'mysql://root@127.0.0.1:3306',
    CONSUL_HTTP_ADDR: '127.0.0.1:8500',
    CDP_WORKSPACE_FILE: '/w.json',
    KAFKA_BROKERS: '127.0.0.1:9092',
    DIRECTOR_RPC_TOKEN: TOKEN,
  };
  it('defaults to content-type and x-cdp-*, parses a list, refuses a forbidden header', () => {
    expect(loadConfig(directorEnv, base).DIRECTOR_RPC_ALLOWED_HEADERS).toEqual(['content-type', 'x-cdp-*']);
    expect(loadConfig(directorEnv, { ...base, DIRECTOR_RPC_ALLOWED_HEADERS: 'x-a, x-b-*' }).DIRECTOR_RPC_ALLOWED_HEADERS).toEqual([
      'x-a',
      'x-b-*',
    ]);
    expect(() => loadConfig(directorEnv, { ...base, DIRECTOR_RPC_ALLOWED_HEADERS: 'x-a,host' })).toThrow(
      /DIRECTOR_RPC_ALLOWED_HEADERS.*host/,
    );
  });
});
