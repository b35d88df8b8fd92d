import type { IncomingRecord, Publisher, TopicAdmin } from '@teal/kafka';

// Dead letters keep the original bytes, so a fixed record can be replayed as it was, and
// say where it came from and why (docs/architecture.md, "Kafka"). They are acknowledged by
// Kafka (acks=all) before the batch's position is committed in green: a crash in between
// sends the letter twice, never zero times.

export interface DeadLetter {
  readonly record: IncomingRecord;
  readonly code: string;
  readonly message: string;
}

export class DeadLetterWriter {
  constructor(
    private readonly publisher: Publisher,
    readonly topic: string,
  ) {}

  async ensureTopic(admin: TopicAdmin, partitions: number): Promise<void> {
    await admin.ensureTopic(this.topic, { partitions });
  }

  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (letters.length === 0) return;
    await this.publisher.send(
      letters.map(({ record, code, message }) => ({
        topic: this.topic,
        key: record.key,
        value: record.value,
        headers: {
          'teal.source.topic': record.topic,
          'teal.source.partition': String(record.partition),
          'teal.source.offset': record.offset.toString(),
          'teal.error.code': code,
          // Headers are not logs, but keep them bounded.
          'teal.error.message': message.slice(0, 2000),
        },
      })),
    );
  }
}
