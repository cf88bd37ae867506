import {
  correctTimestamp,
  decodeEnvelope,
  encodeEnvelope,
  messageKey,
  parseMessageKey,
  regulationSchema,
  segmentMessageSchema,
  undeliveredSchema,
  validateMessage,
  type Envelope,
} from './index';

describe('keys', () => {
  it('round-trips sourceId:messageId, splitting at the first colon', () => {
    expect(parseMessageKey(messageKey('web_1', 'a:b:c'))).toEqual({ sourceId: 'web_1', messageId: 'a:b:c' });
    expect(() => messageKey('bad id', 'x')).toThrow(/sourceId/);
    expect(() => parseMessageKey('nocolon')).toThrow();
  });
});

describe('validateMessage', () => {
  const base = { type: 'track', messageId: 'm1', userId: 'u1', event: 'Signed Up' };
  it.each([
    [{ ...base, type: 'bogus' }, 'invalid_type'],
    [{ ...base, messageId: '' }, 'missing_message_id'],
    [{ ...base, messageId: 'x'.repeat(101) }, 'message_id_too_long'],
    [{ ...base, userId: undefined }, 'missing_user_id'],
    [{ ...base, event: '' }, 'missing_event'],
    [{ type: 'group', messageId: 'm', anonymousId: 'a' }, 'missing_group_id'],
    [{ type: 'alias', messageId: 'm', userId: 'u' }, 'missing_previous_id'],
    [{ type: 'alias', messageId: 'm', previousId: 'p', anonymousId: 'a' }, 'missing_user_id'],
    [{ ...base, properties: 'not-an-object' }, 'invalid_field'],
    ['string', 'not_an_object'],
  ])('rejects %j with %s', (msg, reason) => {
    const r = validateMessage(msg);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe(reason);
  });

  it('accepts valid messages, turning numeric ids into strings and keeping unknown fields', () => {
    const r = validateMessage({ ...base, userId: 42, _metadata: { nodeVersion: '20' } });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.message.userId).toBe('42');
      expect((r.message as Record<string, unknown>)._metadata).toEqual({ nodeVersion: '20' });
    }
  });
});

describe('validateMessage and segmentMessageSchema', () => {
  // The hot-path check and the zod schema are built from one field table: they must agree.
  const base = { type: 'identify', messageId: 'm1', userId: 'u1' };
  const values: unknown[] = ['s', '', 7, 0, null, undefined, true, {}, { a: 1 }, [], ['x']];
  const fields = [
    'userId',
    'anonymousId',
    'previousId',
    'groupId',
    'event',
    'name',
    'timestamp',
    'sentAt',
    'context',
    'traits',
    'properties',
    'messageId',
  ];
  it.each(fields)('accepts and refuses the same values of %s', (field) => {
    for (const value of values) {
      const msg = { ...base, [field]: value };
      const semantic = validateMessage({ ...msg });
      if (!semantic.ok && semantic.reason !== 'invalid_field') continue; // a semantic rule, not typing
      expect({ field, value, fast: semantic.ok }).toEqual({ field, value, fast: segmentMessageSchema.safeParse(msg).success });
    }
  });
  it('names the field and types in the detail', () => {
    const r = validateMessage({ ...base, traits: [1] });
    expect(r.ok ? '' : r.detail).toBe('traits: expected object, received array');
  });
});

describe('correctTimestamp', () => {
  const receivedAt = new Date('2026-01-01T12:00:10.000Z');
  it('corrects client clock skew with sentAt and keeps originalTimestamp', () => {
    // Client clock is 1 h ahead; the event happened 5 s before sending.
    const out = correctTimestamp({ timestamp: '2026-01-01T13:00:05.000Z', sentAt: '2026-01-01T13:00:10.000Z' }, receivedAt);
    expect(out.timestamp).toBe('2026-01-01T12:00:05.000Z');
    expect(out.originalTimestamp).toBe('2026-01-01T13:00:05.000Z');
    expect(out.receivedAt).toBe('2026-01-01T12:00:10.000Z');
  });
  it('uses batch-level sentAt, keeps timestamp without sentAt, and uses server time without timestamp', () => {
    expect(correctTimestamp({ timestamp: '2026-01-01T13:00:05Z' }, receivedAt, '2026-01-01T13:00:10Z').timestamp).toBe(
      '2026-01-01T12:00:05.000Z',
    );
    expect(correctTimestamp({ timestamp: '2025-06-01T00:00:00Z' }, receivedAt).timestamp).toBe('2025-06-01T00:00:00.000Z');
    expect(correctTimestamp({}, receivedAt).timestamp).toBe(receivedAt.toISOString());
  });
  it('keeps the client timestamp when the correction would leave the Date range, and never mutates its input', () => {
    const input = { timestamp: '+275000-01-01T00:00:00.000Z', sentAt: '-270000-01-01T00:00:00.000Z' };
    const out = correctTimestamp(input, receivedAt);
    expect(out.timestamp).toBe('+275000-01-01T00:00:00.000Z');
    expect(input).toEqual({ timestamp: '+275000-01-01T00:00:00.000Z', sentAt: '-270000-01-01T00:00:00.000Z' });
  });
});

describe('schemas', () => {
  const envelope: Envelope = {
    v: 1,
    sourceId: 'web',
    messageId: 'm1',
    receivedAt: '2026-01-01T00:00:00.000Z',
    message: { type: 'track', messageId: 'm1', userId: 'u', event: 'E' },
  };
  it('round-trips an envelope and passes unknown fields through', () => {
    const decoded = decodeEnvelope(Buffer.from(encodeEnvelope({ ...envelope, futureField: 1 } as Envelope)));
    expect(decoded).toMatchObject({ ...envelope, futureField: 1 });
    expect(() => decodeEnvelope(Buffer.from('{"v":2}'))).toThrow();
    expect(() => decodeEnvelope(null)).toThrow(/empty/);
  });
  it('validates undelivered and regulation values', () => {
    expect(
      undeliveredSchema.safeParse({
        ...envelope,
        destinationId: 'd',
        subscriptionId: 's',
        attempts: 3,
        firstAttemptAt: null,
        expiredAt: '2026-01-01T04:00:00.000Z',
        lastStatus: 500,
        lastError: 'http 500',
        lastResponseExcerpt: 'oops',
      }).success,
    ).toBe(true);
    expect(
      regulationSchema.safeParse({
        regulationId: 'r',
        type: 'SUPPRESS_ONLY',
        userId: 'u',
        spaceId: 's',
        requestedAt: '2026-01-01T00:00:00Z',
      }).success,
    ).toBe(true);
    expect(regulationSchema.safeParse({ regulationId: 'r', type: 'NOPE', userId: 'u', spaceId: 's', requestedAt: 'x' }).success).toBe(
      false,
    );
  });
});
