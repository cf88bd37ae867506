import { DirectorRpcRefusedError, DirectorsUnavailableError } from '@cdp/director-rpc';
import { RetriableError } from '@cdp/kafka';
import { sendFailure } from './fan-out';

describe('sendFailure', () => {
  it('no director took the jobs, a token out of step or a 5xx: retriable (the chunk waits, nothing dead-lettered)', () => {
    for (const error of [
      new DirectorsUnavailableError(6, 'ECONNREFUSED'),
      new DirectorRpcRefusedError(401, 'http://d:8080', 'unauthorized'),
      new DirectorRpcRefusedError(403, 'http://d:8080', 'forbidden'),
      new DirectorRpcRefusedError(500, 'http://d:8080', 'oops'),
    ]) {
      const mapped = sendFailure(error);
      expect(mapped).toBeInstanceOf(RetriableError);
      expect((mapped as Error).cause).toBe(error);
    }
  });

  it('a batch a director will never take (400, 413, an unmappable answer): left as is, so the worker isolates the event', () => {
    for (const status of [400, 413, 200]) {
      const error = new DirectorRpcRefusedError(status, 'http://d:8080', 'bad');
      expect(sendFailure(error)).toBe(error);
    }
    const other = new Error('boom');
    expect(sendFailure(other)).toBe(other);
  });
});
