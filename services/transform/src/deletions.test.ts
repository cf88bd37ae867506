import { DELETE_SUBSCRIPTION_ID } from '@cdp/director-rpc';
import type { Regulation } from '@cdp/events';
import { parseWorkspace } from '@cdp/workspace';
import { deletionJobs } from './deletions';

const workspace = parseWorkspace(
  JSON.stringify({
    spaces: [
      { id: 'main', name: 'Main' },
      { id: 'other', name: 'Other' },
    ],
    sources: [
      { id: 'web', name: 'web', spaceId: 'main', writeKeys: ['wk_web'] },
      { id: 'app', name: 'app', spaceId: 'other', writeKeys: ['wk_app'] },
    ],
    destinations: [
      { id: 'hook', name: 'hook', type: 'webhook', settings: { url: 'http://127.0.0.1:9/x' } },
      { id: 'amp', name: 'amp', type: 'actions-amplitude', settings: {}, subscriptions: [] },
      { id: 'ampx', name: 'ampx', type: 'actions-amplitude', settings: {}, subscriptions: [] },
    ],
    connections: [
      { sourceId: 'web', destinationId: 'hook' },
      { sourceId: 'web', destinationId: 'amp' },
      { sourceId: 'app', destinationId: 'ampx' },
    ],
  }),
  { format: 'json' },
);

const regulation = (type: Regulation['type']): Regulation => ({
  regulationId: 'r-1',
  type,
  userId: 'user-1',
  spaceId: 'main',
  requestedAt: '2026-12-05T10:00:00.000Z',
  subjects: 4,
});

describe('delete jobs of a regulation record', () => {
  it('one per action destination for a deletion; a destination not connected to the space is marked so', () => {
    for (const type of ['DELETE_ONLY', 'SUPPRESS_WITH_DELETE'] as const) {
      const jobs = deletionJobs(regulation(type), workspace);
      expect(jobs.map((j) => [j.destinationId, j.sourceId, (j.payload as { connected: boolean }).connected])).toEqual([
        ['amp', 'web', true],
        ['ampx', 'app', false],
      ]);
      for (const job of jobs) {
        expect(job.subscriptionId).toBe(DELETE_SUBSCRIPTION_ID);
        expect(job.messageId).toMatch(/^regulation:r-1:[0-9a-f]{40}$/);
        expect(job.messageId).not.toContain('user-1');
        expect(job.receivedAt).toBeUndefined(); // its retry window starts when it is stored
        expect(job.payload).toMatchObject({ type: 'delete', regulationId: 'r-1', spaceId: 'main', userId: 'user-1', subjects: 4 });
      }
    }
  });

  it('none for a suppression or its lifting', () => {
    expect(deletionJobs(regulation('SUPPRESS_ONLY'), workspace)).toEqual([]);
    expect(deletionJobs(regulation('UNSUPPRESS'), workspace)).toEqual([]);
  });
});
