import { Partitioners } from 'kafkajs';
import { javaCompatiblePartitioner, murmur2 } from './partitioner';

const metadata = (n: number, leaderless: number[] = []) =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
    offlineReplicas: [],
    partitionErrorCode: 0,
  }));

describe('javaCompatiblePartitioner', () => {
  // kafkajs's DefaultPartitioner is the Java client's placement; ours must agree key for key.
  const reference = Partitioners.DefaultPartitioner();
  const ours = javaCompatiblePartitioner();

  it('places every key where kafkajs (and the Java client) does', () => {
    const keys = ['', 'a', 'ab', 'abc', 'abcd', 'web:msg-1', 'wk:ü€😀', 'x'.repeat(5_000), 'src_1:' + 'é'.repeat(1_200)];
    for (let i = 0; i < 3_000; i++) keys.push(`source_${i % 7}:${(i * 2654435761).toString(36)}-${i}`);
    for (const partitions of [1, 6, 12, 64]) {
      const partitionMetadata = metadata(partitions);
      for (const key of keys) {
        const args = { topic: 't', partitionMetadata, message: { key, value: 'v' } };
        expect({ key: key.slice(0, 20), p: ours(args) }).toEqual({ key: key.slice(0, 20), p: reference(args) });
      }
    }
  });

  it('matches murmur2 of known Java values and accepts Buffers', () => {
    // Values from the Java client's Utils.murmur2 (Kafka's UtilsTest vectors).
    expect(murmur2('21')).toBe(-973932308);
    expect(murmur2('foobar')).toBe(-790332482);
    expect(murmur2('a-little-bit-long-string')).toBe(-985981536);
    expect(murmur2('a-little-bit-longer-string')).toBe(-1486304829);
    expect(murmur2(Buffer.from('foobar'))).toBe(-790332482);
  });

  it('keeps an explicit partition and spreads keyless messages over partitions with a leader', () => {
    const partitionMetadata = metadata(4, [1, 2]);
    expect(ours({ topic: 't', partitionMetadata, message: { key: 'k', value: 'v', partition: 2 } })).toBe(2);
    const seen = new Set<number>();
    for (let i = 0; i < 20; i++) seen.add(ours({ topic: 't', partitionMetadata, message: { value: 'v' } }));
    expect([...seen].sort()).toEqual([0, 3]);
  });
});
