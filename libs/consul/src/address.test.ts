import { consulBaseUrl, parseConsulAddr } from './address';
import { durationToMs } from './duration';

describe('parseConsulAddr', () => {
  it.each([
    ['127.0.0.1:8500', { host: '127.0.0.1', port: 8500, secure: false }],
    ['http://consul.svc:8500', { host: 'consul.svc', port: 8500, secure: false }],
    ['http://consul.svc:8500/', { host: 'consul.svc', port: 8500, secure: false }],
    ['https://consul.svc:8501', { host: 'consul.svc', port: 8501, secure: true }],
    ['consul', { host: 'consul', port: 8500, secure: false }],
    ['[::1]:8500', { host: '[::1]', port: 8500, secure: false }],
  ])('parses %s', (addr, expected) => {
    expect(parseConsulAddr(addr)).toEqual(expected);
  });

  it('makes the base URL back', () => {
    expect(consulBaseUrl(parseConsulAddr('[::1]:8500'))).toBe('http://[::1]:8500');
    expect(consulBaseUrl(parseConsulAddr('https://consul.svc'))).toBe('https://consul.svc:443');
  });

  it.each(['', 'unix:///var/run/consul.sock', 'http://host:8500/v1', 'host:port'])('rejects %j', (addr) => {
    expect(() => parseConsulAddr(addr)).toThrow();
  });
});

describe('durationToMs', () => {
  it.each([
    ['10s', 10_000],
    ['500ms', 500],
    ['1m30s', 90_000],
    ['1.5s', 1_500],
    ['2h', 7_200_000],
    ['0', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(durationToMs(text)).toBe(ms);
  });

  it.each(['', '10', 'ten', '10x', '-5s'])('rejects %j', (text) => {
    expect(() => durationToMs(text)).toThrow(/invalid duration/);
  });
});
