import { type MessageToProduce, Producer } from '@platformatic/kafka';
import { TealError } from '@teal/errors';
import { log } from '../log.ts';
import { OrderedSends } from '../ordered-sends.ts';
import { partitionForKey, positiveHash } from '../partitioner.ts';
import { brokerSaidTooLarge, tooLargeError } from '../record-size.ts';
import type { KafkaOptions, OutgoingRecord, Publisher } from '../types.ts';
import { checkSecurity, platformaticOptions } from './connection.ts';
import { wrapPlatformaticError } from './errors.ts';

// teal's Publisher on @platformatic/kafka (pure JS, callback core, no per-record promise or
// Long arithmetic). Choices that keep the contract:
// - idempotent producer (broker de-duplicates retried batches), acks = -1;
// - partition = the Java client's murmur2 partition (partitioner.ts), not platformatic's own;
// - sends run one at a time in call order: platformatic computes an idempotent batch's
//   sequence numbers when it builds the request and advances them only on the response,
//   so two concurrent sends to one partition would carry the same sequence (the broker
//   would take the second for a duplicate of the first and drop it);
// - a failed send rejects every send queued behind it, and the next send starts on a new
//   producer (new producer id): a request that failed on our side may still have been
//   written, and reusing its sequence numbers for other records would make the broker
//   acknowledge them as duplicates without writing them.

/** A publisher that has its producer id, so a broker that is down fails here; closed on failure. */
export async function openPlatformaticPublisher(options: KafkaOptions): Promise<PlatformaticPublisher> {
  const publisher = new PlatformaticPublisher(options);
  try {
    await publisher.connect();
  } catch (err) {
    await publisher.close();
    throw err;
  }
  return publisher;
}

/** Closes even with a send pending (force); errors only logged. */
function closeProducer(producer: Producer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
  return new Promise((resolve) =>
    producer.close(true, (err) => {
      if (err) log().debug({ err }, 'closing the Kafka producer');
      resolve();
    }),
  );
}

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

// platformatic takes the result modulo the topic's partition count.
const javaPartitioner = (_message: Message, key: Buffer | undefined): number => (key ? positiveHash(key) : 0);

export class PlatformaticPublisher implements Publisher {
  private producer: Producer<Buffer, Buffer, Buffer, Buffer>;
  private readonly ordered = new OrderedSends();
  private resetNeeded = false;
  private closed = false;
  /** Header names and values repeat (teal.op, teal.xid, ...): encode each string once. */
  private readonly headerNames = new Map<string, Buffer>();

  constructor(private readonly options: KafkaOptions) {
    this.producer = this.createProducer();
  }

  private createProducer(): Producer<Buffer, Buffer, Buffer, Buffer> {
    return new Producer<Buffer, Buffer, Buffer, Buffer>({
      ...platformaticOptions(this.options, 'producer'),
      idempotent: true,
      acks: -1,
      partitioner: javaPartitioner,
      // Validating every message with ajv costs more than building the request.
      strict: false,
    });
  }

  /** Fetches the producer id now, so a broker that is down fails here and not on the first send. */
  async connect(): Promise<void> {
    await checkSecurity(this.options);
    try {
      await this.producer.initIdempotentProducer({});
    } catch (err) {
      throw wrapPlatformaticError(err, 'cannot connect the Kafka producer', this.options);
    }
  }

  /** One send at a time, in call order (OrderedSends says why); after a failure, a new producer id. */
  send(records: OutgoingRecord[]): Promise<void> {
    return this.ordered.run(
      () => this.sendNow(records),
      () => {
        this.resetNeeded = true;
      },
    );
  }

  private async sendNow(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.closed)
      throw new TealError('TEAL_KAFKA_ERROR', 'the Kafka publisher is closed', { retriable: true });
    if (this.resetNeeded) {
      // Sequence numbers of a failed request are unknown to us: start over with a new producer id.
      this.resetNeeded = false;
      const old = this.producer;
      this.producer = this.createProducer();
      await closeProducer(old);
    }
    const messages: Message[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const m: Message = { topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined };
      if (r.partition !== undefined) m.partition = r.partition;
      if (r.headers) m.headers = this.encodeHeaders(r.headers);
      messages[i] = m;
    }
    try {
      await this.producer.send({ messages });
    } catch (err) {
      if (brokerSaidTooLarge(err)) throw tooLargeError(err, records);
      throw wrapPlatformaticError(err, `Kafka did not acknowledge ${records.length} records`, this.options);
    }
  }

  private encodeHeaders(headers: Record<string, string>): Map<Buffer, Buffer> {
    const out = new Map<Buffer, Buffer>();
    for (const name in headers) {
      let nameBuf = this.headerNames.get(name);
      if (!nameBuf) {
        nameBuf = Buffer.from(name);
        if (this.headerNames.size < 1000) this.headerNames.set(name, nameBuf);
      }
      out.set(nameBuf, Buffer.from(headers[name]!));
    }
    return out;
  }

  partitionFor(key: Buffer, partitionCount: number): number {
    return partitionForKey(key, partitionCount);
  }

  async close(): Promise<void> {
    // Close at once (a send waiting out retries during a broker outage then fails), then let
    // the queued sends settle.
    this.closed = true;
    await closeProducer(this.producer);
    await this.ordered.settled();
  }
}
