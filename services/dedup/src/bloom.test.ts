import { BloomFilter } from './bloom';

describe('BloomFilter', () => {
  it('never forgets an added key and keeps false positives near the configured rate', () => {
    const bloom = new BloomFilter(50_000, 0.01);
    for (let i = 0; i < 50_000; i++) bloom.add(`src:msg-${i}`);
    for (let i = 0; i < 50_000; i++) expect(bloom.mightContain(`src:msg-${i}`)).toBe(true);
    let falsePositives = 0;
    for (let i = 0; i < 50_000; i++) if (bloom.mightContain(`src:other-${i}`)) falsePositives++;
    expect(falsePositives / 50_000).toBeLessThan(0.02);
    expect(bloom.isOverfull).toBe(false);
    bloom.add('one-more');
    expect(bloom.isOverfull).toBe(true);
  });

  it('sizes itself from capacity and rate', () => {
    const bloom = new BloomFilter(1_000_000, 0.01);
    // ~9.6 bits per key at 1 %.
    expect(bloom.memoryBytes).toBeGreaterThan(1_150_000);
    expect(bloom.memoryBytes).toBeLessThan(1_250_000);
    expect(bloom.hashes).toBe(7);
  });
});
