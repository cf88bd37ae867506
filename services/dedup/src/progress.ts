import type { Admin } from 'kafkajs';

/**
 * The input offset the consumer group has committed for one partition (0 when none). Read
 * after fencing the partition's transactional id, it is final: every input record below it
 * had its output and its dead letter published by the transaction that committed it, so a new
 * owner skips that input instead of dead-lettering it again (the output alone cannot tell, as
 * dead letters leave no trace there).
 */
export async function committedInputOffset(admin: Admin, groupId: string, topic: string, partition: number): Promise<number> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  const offset = Number(offsets?.partitions.find((p) => p.partition === partition)?.offset ?? -1);
  return offset >= 0 ? offset : 0;
}
