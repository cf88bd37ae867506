import { logLines } from './log-lines';

describe('logLines', () => {
  it('parses the JSON object lines in order and passes over the rest', () => {
    const text = [
      '{"level":"info","msg":"dedup starting","version":"1.2.3"}',
      'Error: boom',
      '    at somewhere (file.js:1:1)',
      '{"level":"fatal","msg":"dedup failed to start","err":{"message":"missing Kafka topics: x"}}',
      '[1,2]',
      '{"level":"info","msg":"cut off',
      '',
    ].join('\n');
    expect(logLines(text)).toEqual([
      { level: 'info', msg: 'dedup starting', version: '1.2.3' },
      { level: 'fatal', msg: 'dedup failed to start', err: { message: 'missing Kafka topics: x' } },
    ]);
  });
});
