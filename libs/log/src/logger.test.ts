import { Writable } from 'node:stream';
import { createLogger, errorFields, registerSecret, redactText, REDACTED } from './index';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, destination };
}

describe('logger', () => {
  it('writes JSON lines with name and level label', () => {
    const { lines, destination } = capture();
    createLogger({ name: 'svc', destination }).info({ a: 1 }, 'hello');
    const line = JSON.parse(lines[0]);
    expect(line).toMatchObject({ name: 'svc', level: 'info', msg: 'hello', a: 1 });
  });

  it('redacts credential key paths', () => {
    const { lines, destination } = capture();
    createLogger({ name: 'svc', destination }).info({ headers: { authorization: 'Basic abc' }, password: 'p4ss' }, 'x');
    expect(lines[0]).not.toContain('abc');
    expect(lines[0]).not.toContain('p4ss');
    expect(lines[0]).toContain(REDACTED);
  });

  it('redacts DSN passwords and registered secret values anywhere in a line', () => {
    const { lines, destination } = capture();
    registerSecret('sk_live_very_secret');
    const log = createLogger({ name: 'svc', destination });
    log.info({ url: 'mysql://app:hunter22@db:3306/x' }, 'connecting');
    log.error({ detail: { nested: 'token sk_live_very_secret leaked' } }, 'failed with sk_live_very_secret');
    const all = lines.join('');
    expect(all).not.toContain('hunter22');
    expect(all).not.toContain('sk_live_very_secret');
    expect(all).toContain('mysql://app:[REDACTED]@db:3306/x');
  });

  it('redacts bearer tokens in free text and ignores too-short secrets', () => {
    registerSecret('ab');
    expect(redactText('Authorization: Bearer abcdef123')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redactText('about')).toBe('about');
  });
});

describe('errorFields', () => {
  it('keeps driver codes next to the message (stacks of driver errors can be short)', () => {
    const sqlError = Object.assign(new Error('Deadlock found'), { code: 'ER_LOCK_DEADLOCK', sqlState: '40001' });
    expect(errorFields(sqlError).err).toMatchObject({
      message: 'Deadlock found',
      name: 'Error',
      code: 'ER_LOCK_DEADLOCK',
      sqlState: '40001',
    });
    expect(errorFields(Object.assign(new Error('x'), { code: 42 })).err.code).toBeUndefined();
    expect(errorFields('plain')).toEqual({ err: { message: 'plain' } });
  });
});
