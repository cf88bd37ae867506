import crypto from 'node:crypto';
import KSUID from 'ksuid';
import { encodeKsuid, idempotencyHash, newJobId } from './jobdb';
import { CREATE_TABLES, isFinal } from './schema';

describe('jobs', () => {
  it('hashes the idempotency key unambiguously', () => {
    const k = { sourceId: 's', messageId: 'm', destinationId: 'd', subscriptionId: 'x' };
    expect(idempotencyHash(k)).toMatch(/^[0-9a-f]{64}$/);
    expect(idempotencyHash(k)).toBe(idempotencyHash({ ...k }));
    // Field boundaries matter: "ab"+"c" differs from "a"+"bc".
    expect(idempotencyHash({ ...k, sourceId: 'ab', messageId: 'c' })).not.toBe(idempotencyHash({ ...k, sourceId: 'a', messageId: 'bc' }));
  });
  it('puts a forced replay id into the key, and only then', () => {
    const k = { sourceId: 's', messageId: 'm', destinationId: 'd', subscriptionId: 'x' };
    // Without one, the four-part hash stored before replays existed.
    const fourParts = crypto
      .createHash('sha256')
      .update(JSON.stringify(['s', 'm', 'd', 'x']))
      .digest('hex');
    expect(idempotencyHash(k)).toBe(fourParts);
    expect(idempotencyHash({ ...k, replayId: undefined })).toBe(fourParts);
    expect(idempotencyHash({ ...k, replayId: 'r1' })).not.toBe(fourParts);
    expect(idempotencyHash({ ...k, replayId: 'r1' })).not.toBe(idempotencyHash({ ...k, replayId: 'r2' }));
    expect(idempotencyHash({ ...k, replayId: 'r1' })).toBe(idempotencyHash({ ...k, replayId: 'r1' }));
  });
  it('encodes KSUIDs exactly as the ksuid package does', () => {
    for (let i = 0; i < 2_000; i++) {
      const bytes = crypto.randomBytes(20);
      if (i === 0) bytes.fill(0);
      if (i === 1) bytes.fill(0xff);
      const words = [0, 4, 8, 12, 16].map((o) => bytes.readUInt32BE(o));
      expect(encodeKsuid(words)).toBe(KSUID.fromParts(1_400_000_000_000 + bytes.readUInt32BE(0) * 1000, bytes.subarray(4)).string);
    }
    const id = newJobId(1_700_000_000_000);
    expect(KSUID.parse(id).date.getTime()).toBe(1_700_000_000_000);
  });
  it('makes time-ordered 27-char KSUIDs', () => {
    const a = newJobId(1_700_000_000_000);
    const b = newJobId(1_700_000_005_000);
    expect(a).toHaveLength(27);
    expect(a < b).toBe(true);
  });
  it('declares append-only tables with binary KSUID keys', () => {
    const sql = CREATE_TABLES.join('\n');
    expect(sql).toMatch(/id CHAR\(27\) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY/);
    expect(sql).not.toMatch(/\b(UPDATE|DELETE|REPLACE)\b/i);
    expect(isFinal('succeeded') && isFinal('discarded') && isFinal('archived') && !isFinal('awaiting_retry')).toBe(true);
  });
});
