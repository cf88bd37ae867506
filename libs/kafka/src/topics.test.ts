import { topicNames, topicSpecs } from './topics';

describe('topicSpecs', () => {
  it('follows the DESIGN.md topic table with production defaults', () => {
    const specs = topicSpecs();
    expect(specs.ingest).toMatchObject({ name: 'cdp.ingest', replicationFactor: 3, partitions: 12 });
    expect(specs.ingest.configs['min.insync.replicas']).toBe('2');
    expect(specs.deduped.configs['retention.ms']).toBe(String(30 * 86_400_000));
    expect(specs.regulations.configs['cleanup.policy']).toBe('compact');
    expect(specs['regulation-status']).toMatchObject({ name: 'cdp.regulation-status', configs: { 'cleanup.policy': 'compact' } });
    expect(topicNames('t1.').dlq).toBe('t1.dlq');
  });
  it('refuses to un-co-partition ingest and deduped', () => {
    expect(() => topicSpecs({ partitions: { ingest: 6, deduped: 12 } })).toThrow(/same partition count/);
  });
});
