// A fixed-size Bloom filter over strings, with double hashing (Kirsch–Mitzenmacher): k probe
// positions from two 32-bit murmur3 hashes. It sits in front of the level store so that most
// lookups of new message ids never touch disk; a "maybe" is confirmed on disk.

function murmur3(key: string, seed: number): number {
  let h = seed >>> 0;
  const len = key.length;
  let i = 0;
  // Two UTF-16 code units per 32-bit block.
  for (; i + 1 < len; i += 2) {
    let k = (key.charCodeAt(i) & 0xffff) | ((key.charCodeAt(i + 1) & 0xffff) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < len) {
    let k = key.charCodeAt(i) & 0xffff;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  private readonly words: Uint32Array;
  private count = 0;

  /** Sized for `capacity` keys at false-positive rate `fpr`. */
  constructor(
    readonly capacity: number,
    readonly fpr = 0.01,
  ) {
    const bits = Math.ceil((-capacity * Math.log(fpr)) / (Math.LN2 * Math.LN2));
    this.bits = Math.max(64, bits);
    this.hashes = Math.max(1, Math.round((this.bits / capacity) * Math.LN2));
    this.words = new Uint32Array(Math.ceil(this.bits / 32));
  }

  get size(): number {
    return this.count;
  }

  get memoryBytes(): number {
    return this.words.byteLength;
  }

  /** True when more keys were added than it was sized for (its false-positive rate rises). */
  get isOverfull(): boolean {
    return this.count > this.capacity;
  }

  add(key: string): void {
    const h1 = murmur3(key, 0x9747b28c);
    const h2 = murmur3(key, 0x5bd1e995) | 1;
    for (let i = 0; i < this.hashes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const pos = bit % this.bits;
      this.words[pos >>> 5] |= 1 << (pos & 31);
    }
    this.count++;
  }

  mightContain(key: string): boolean {
    const h1 = murmur3(key, 0x9747b28c);
    const h2 = murmur3(key, 0x5bd1e995) | 1;
    for (let i = 0; i < this.hashes; i++) {
      const bit = (h1 + Math.imul(i, h2)) >>> 0;
      const pos = bit % this.bits;
      if ((this.words[pos >>> 5] & (1 << (pos & 31))) === 0) return false;
    }
    return true;
  }
}
