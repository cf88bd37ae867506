import type { BatchingProducer } from '@cdp/kafka';
import type { UndeliveredPublisher } from './undelivered';

/** cdp.undelivered through the shared acks=all idempotent producer. */
export class KafkaUndeliveredPublisher implements UndeliveredPublisher {
  constructor(
    private readonly producer: BatchingProducer,
    private readonly topic: string,
  ) {}

  publish(records: Array<{ key: string; value: string }>): Promise<void> {
    return this.producer.send(this.topic, records);
  }
}
