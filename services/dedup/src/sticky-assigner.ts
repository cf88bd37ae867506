import { AssignerProtocol, type PartitionAssigner } from 'kafkajs';

/**
 * A partition assignor that keeps partitions where their state is. kafkajs has no cooperative
 * or sticky protocol (its round robin reshuffles everything on every join), and for dedup a
 * partition that moves to a member without its store costs a repair of the whole output
 * partition (window + 2 days of it).
 *
 * Each member's join metadata carries what it owns now (with when it got it) and which
 * partitions it has a store for on its volume. The leader then:
 * 1. lets each member keep what it owns, up to its fair share (the newest claim wins when two
 *    members claim one partition, e.g. a member that was dropped and has not noticed);
 * 2. gives each remaining partition to a member with room that has it on its volume;
 * 3. distributes the rest round robin over the members with the most room.
 * Counts per member differ by at most one.
 */

export const STICKY_ASSIGNER_NAME = 'CdpStickyAssigner';

/** What one member says about itself (JSON in the member metadata's userData). */
export interface MemberState {
  /** Partitions per topic it owns now. */
  owned: Record<string, number[]>;
  /** When it received that assignment (ms); breaks ties between stale and current claims. */
  assignedAt: number;
  /** Partitions per topic it has a local store for. */
  stored: Record<string, number[]>;
}

export interface AssignInput {
  memberId: string;
  topics: string[];
  state: MemberState;
}

const EMPTY_STATE: MemberState = { owned: {}, assignedAt: 0, stored: {} };

/** The assignment (member → topic → partitions) of every topic in `partitionsByTopic`. */
export function stickyAssign(members: AssignInput[], partitionsByTopic: Record<string, number[]>): Map<string, Record<string, number[]>> {
  const result = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
  for (const [topic, partitions] of Object.entries(partitionsByTopic)) {
    const subscribed = members.filter((m) => m.topics.includes(topic)).sort((a, b) => a.memberId.localeCompare(b.memberId));
    if (subscribed.length === 0) continue;
    for (const [memberId, assigned] of assignTopic(subscribed, partitions, topic))
      result.get(memberId)![topic] = assigned.sort((a, b) => a - b);
  }
  return result;
}

function assignTopic(members: AssignInput[], partitions: number[], topic: string): Map<string, number[]> {
  const valid = new Set(partitions);
  const stored = new Map(members.map((m) => [m.memberId, new Set(m.state.stored[topic] ?? [])]));

  // 1. Claims: each partition to its newest claimant.
  const claim = new Map<number, AssignInput>();
  for (const m of members) {
    for (const p of m.state.owned[topic] ?? []) {
      if (!valid.has(p)) continue;
      const other = claim.get(p);
      if (!other || m.state.assignedAt > other.state.assignedAt) claim.set(p, m);
    }
  }
  const kept = new Map<string, number[]>(members.map((m) => [m.memberId, []]));
  for (const [p, m] of claim) kept.get(m.memberId)!.push(p);

  // Fair shares: the members keeping the most get the larger ones (the fewest moves).
  const floor = Math.floor(partitions.length / members.length);
  let larger = partitions.length % members.length;
  const quota = new Map<string, number>();
  for (const m of [...members].sort((a, b) => kept.get(b.memberId)!.length - kept.get(a.memberId)!.length)) {
    quota.set(m.memberId, floor + (larger > 0 ? 1 : 0));
    if (larger > 0) larger--;
  }

  // Over its share, a member first gives up what another member with room has on its volume.
  const hasRoomAndStore = (p: number, owner: string) =>
    members.some((o) => o.memberId !== owner && kept.get(o.memberId)!.length < quota.get(o.memberId)! && stored.get(o.memberId)!.has(p));
  const pool: number[] = [];
  for (const m of members) {
    const mine = kept.get(m.memberId)!;
    const excess = mine.length - quota.get(m.memberId)!;
    if (excess <= 0) continue;
    mine.sort((a, b) => Number(hasRoomAndStore(b, m.memberId)) - Number(hasRoomAndStore(a, m.memberId)) || a - b);
    pool.push(...mine.splice(0, excess));
  }
  for (const p of partitions) if (!claim.has(p)) pool.push(p);
  pool.sort((a, b) => a - b);

  const room = (m: AssignInput) => quota.get(m.memberId)! - kept.get(m.memberId)!.length;
  // 2. To a member with room that has the partition's store.
  const rest: number[] = [];
  for (const p of pool) {
    const holder = members.find((m) => room(m) > 0 && stored.get(m.memberId)!.has(p));
    if (holder) kept.get(holder.memberId)!.push(p);
    else rest.push(p);
  }
  // 3. Round robin over the members with the most room.
  for (const p of rest) {
    let best = members[0];
    for (const m of members) if (room(m) > room(best)) best = m;
    kept.get(best.memberId)!.push(p);
  }
  return kept;
}

export function encodeMemberState(state: MemberState): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, ...state }));
}

export function decodeMemberState(userData: Buffer | null | undefined): MemberState {
  if (!userData || userData.length === 0) return EMPTY_STATE;
  try {
    const parsed = JSON.parse(userData.toString('utf8')) as Partial<MemberState> & { v?: number };
    if (parsed.v !== 1) return EMPTY_STATE;
    return { owned: parsed.owned ?? {}, assignedAt: Number(parsed.assignedAt ?? 0), stored: parsed.stored ?? {} };
  } catch {
    // A member of another version: treated as one with nothing to keep.
    return EMPTY_STATE;
  }
}

/** The kafkajs assigner; `state` is read at every join (what this member owns and stores now). */
export function stickyAssigner(state: () => MemberState): PartitionAssigner {
  return ({ cluster }) => ({
    name: STICKY_ASSIGNER_NAME,
    version: 1,
    async assign({ members, topics }) {
      const inputs: AssignInput[] = members.map(({ memberId, memberMetadata }) => {
        const meta = AssignerProtocol.MemberMetadata.decode(memberMetadata);
        return { memberId, topics: meta?.topics ?? topics, state: decodeMemberState(meta?.userData) };
      });
      const partitionsByTopic = Object.fromEntries(topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).map((p) => p.partitionId)]));
      const assignment = stickyAssign(inputs, partitionsByTopic);
      return [...assignment].map(([memberId, byTopic]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: byTopic, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return {
        name: STICKY_ASSIGNER_NAME,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: encodeMemberState(state()) }),
      };
    },
  });
}
