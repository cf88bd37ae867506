const GROUP_ERRORS = new Set([
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'NOT_COORDINATOR_FOR_GROUP',
  'FENCED_INSTANCE_ID',
]);

/** The consumer group moved on (rebalance, expired membership): kafkajs must rejoin. */
export function isGroupMembershipError(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    const { type, name } = e as { type?: string; name?: string };
    if (GROUP_ERRORS.has(type ?? '') || name === 'KafkaJSRebalanceError') return true;
  }
  return false;
}

/**
 * Heartbeats the group during long work. A membership error is thrown (the work stops so the
 * consumer can rejoin in time instead of losing the partition); others (a broker briefly
 * unreachable) do not stop the work.
 */
export async function keepMembership(heartbeat: () => Promise<void>): Promise<void> {
  try {
    await heartbeat();
  } catch (error) {
    if (isGroupMembershipError(error)) throw error;
  }
}
