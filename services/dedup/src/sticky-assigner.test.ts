import { AssignerProtocol } from 'kafkajs';
import { decodeMemberState, encodeMemberState, stickyAssign, stickyAssigner, type AssignInput, type MemberState } from './sticky-assigner';

const T = 'cdp.ingest';
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function member(memberId: string, owned: number[] = [], stored: number[] = [], assignedAt = 1): AssignInput {
  return { memberId, topics: [T], state: { owned: { [T]: owned }, assignedAt, stored: { [T]: stored } } };
}

function assign(members: AssignInput[], partitions = 12): Record<string, number[]> {
  const result = stickyAssign(members, { [T]: range(partitions) });
  return Object.fromEntries([...result].map(([id, byTopic]) => [id, byTopic[T] ?? []]));
}

/** Every partition exactly once; counts differ by at most one. */
function expectBalanced(a: Record<string, number[]>, partitions = 12): void {
  expect(
    Object.values(a)
      .flat()
      .sort((x, y) => x - y),
  ).toEqual(range(partitions));
  const counts = Object.values(a).map((p) => p.length);
  expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
}

describe('stickyAssign', () => {
  it('spreads a fresh group evenly', () => {
    const a = assign([member('a'), member('b'), member('c'), member('d'), member('e')]);
    expectBalanced(a);
  });

  it('moves only the newcomer share when a member joins', () => {
    const a = assign([member('a', [0, 1, 2, 3, 4, 5]), member('b', [6, 7, 8, 9, 10, 11]), member('c')]);
    expectBalanced(a);
    expect(a.c).toHaveLength(4);
    for (const p of a.a) expect([0, 1, 2, 3, 4, 5]).toContain(p);
    for (const p of a.b) expect([6, 7, 8, 9, 10, 11]).toContain(p);
  });

  it('keeps every member its partitions when one leaves, and spreads only the leaver’s', () => {
    const a = assign([member('a', [0, 3, 6, 9]), member('c', [2, 5, 8, 11])]); // b (1, 4, 7, 10) left
    expectBalanced(a);
    expect(a.a).toEqual(expect.arrayContaining([0, 3, 6, 9]));
    expect(a.c).toEqual(expect.arrayContaining([2, 5, 8, 11]));
  });

  it('gives a partition claimed twice to the newest claim (a dropped member that has not noticed)', () => {
    const a = assign([member('stale', [0, 1, 2], [], 100), member('current', [2, 3], [], 200)], 4);
    expectBalanced(a, 4);
    expect(a.current).toEqual([2, 3]);
    expect(a.stale).toEqual([0, 1]);
  });

  it('gives unowned partitions to a member that has them on its volume (restart)', () => {
    // b restarted: it owns nothing but still has the stores of 6..11.
    const a = assign([member('a', [0, 1, 2, 3, 4, 5]), member('b', [], [6, 7, 8, 9, 10, 11])]);
    expect(a).toEqual({ a: [0, 1, 2, 3, 4, 5], b: [6, 7, 8, 9, 10, 11] });
  });

  it('hands back to a returning member what it has on its volume, not other partitions', () => {
    // b left and a took everything; b returns with its stores: a releases exactly those.
    const a = assign([member('a', range(12), [0, 1, 2, 3, 4, 5]), member('b', [], [6, 7, 8, 9, 10, 11])]);
    expect(a).toEqual({ a: [0, 1, 2, 3, 4, 5], b: [6, 7, 8, 9, 10, 11] });
  });

  it('ignores partitions that no longer exist and members not subscribed to the topic', () => {
    const other: AssignInput = { memberId: 'x', topics: ['other'], state: { owned: {}, assignedAt: 0, stored: {} } };
    const a = assign([member('a', [0, 1, 20]), member('b', [2]), other], 4);
    expectBalanced({ a: a.a, b: a.b }, 4);
    expect(a.x).toEqual([]);
    expect(a.a).toEqual(expect.arrayContaining([0, 1]));
  });
});

describe('stickyAssigner (kafkajs protocol)', () => {
  it('round-trips member state through the join metadata and encodes assignments kafkajs reads', async () => {
    const state: MemberState = { owned: { [T]: [1, 3] }, assignedAt: 42, stored: { [T]: [1, 3, 5] } };
    const cluster = { findTopicPartitionMetadata: () => range(4).map((partitionId) => ({ partitionId })) };
    const assigner = stickyAssigner(() => state)({ cluster, groupId: 'g', logger: undefined } as never);
    const protocol = assigner.protocol({ topics: [T] });
    const decoded = AssignerProtocol.MemberMetadata.decode(protocol.metadata)!;
    expect(decodeMemberState(decoded.userData)).toEqual(state);

    const fresh = stickyAssigner(() => ({ owned: {}, assignedAt: 0, stored: {} }))({ cluster } as never).protocol({ topics: [T] });
    const result = await assigner.assign({
      members: [
        { memberId: 'm1', memberMetadata: protocol.metadata },
        { memberId: 'm2', memberMetadata: fresh.metadata },
      ],
      topics: [T],
    });
    const byMember = Object.fromEntries(
      result.map((r) => [r.memberId, AssignerProtocol.MemberAssignment.decode(r.memberAssignment)!.assignment[T]]),
    );
    expect(byMember).toEqual({ m1: [1, 3], m2: [0, 2] });
    expect(decodeMemberState(Buffer.from('not json'))).toEqual({ owned: {}, assignedAt: 0, stored: {} });
    expect(decodeMemberState(encodeMemberState(state))).toEqual(state);
  });
});
