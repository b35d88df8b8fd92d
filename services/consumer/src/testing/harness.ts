import {
  type ChangeEvent,
  type ColumnInfo,
  formatPosition,
  type Op,
  type Row,
  schemasTopic,
  TableCodec,
  type TableSchema,
  tableTopic,
} from '@teal/change-event';
import { type KafkaClient, type OutgoingRecord, type Publisher, SchemaTopic } from '@teal/kafka';

// Test support: publishes change events exactly as the producer does (TableCodec single-object
// encoding, key = encoded key record, writer schemas in `<prefix>._schemas` first), so the
// consumer is tested on the wire format without a producer.

const TYPE_OIDS: Record<string, number> = {
  int4: 23,
  int8: 20,
  text: 25,
  bool: 16,
  numeric: 1700,
  jsonb: 3802,
};

export function column(name: string, type: string, isKey = false): ColumnInfo {
  const array = type.endsWith('[]');
  return {
    name,
    type: { oid: TYPE_OIDS[type] ?? (array ? 1007 : 25), name: type, kind: array ? 'array' : 'base' },
    typmod: -1,
    isKey,
  };
}

export function tableSchema(schema: string, table: string, columns: ColumnInfo[]): TableSchema {
  return { schema, table, columns, keyColumns: columns.filter((c) => c.isKey).map((c) => c.name) };
}

export interface EventInput {
  op: Op;
  lsn: bigint;
  seq: number;
  key?: Row;
  after?: Row | null;
  unchanged?: string[];
  /** Explicit partition (default: by key; a truncate goes to every partition). */
  partition?: number;
}

export function changeEvent(table: TableSchema, e: EventInput): ChangeEvent {
  const after = e.after ?? null;
  const key: Row = {};
  if (e.op !== 't') for (const k of table.keyColumns) key[k] = (e.key ?? after)?.[k] ?? null;
  return {
    op: e.op,
    schema: table.schema,
    table: table.table,
    position: { lsn: e.lsn, seq: e.seq },
    xid: 1,
    commitTimeUs: BigInt(Date.now()) * 1000n,
    key,
    after,
    before: null,
    unchanged: e.unchanged ?? [],
  };
}

export class TestStream {
  private publisher: Publisher | undefined;
  private readonly schemaTopic: SchemaTopic;
  private readonly topics = new Set<string>();

  constructor(
    private readonly kafka: KafkaClient,
    readonly prefix: string,
    readonly partitions = 2,
  ) {
    this.schemaTopic = new SchemaTopic(kafka, schemasTopic(prefix));
  }

  topicOf(table: TableSchema): string {
    return tableTopic(this.prefix, table.schema, table.table);
  }

  /** Encodes and publishes events of one table version (schemas first, as the producer does). */
  async send(table: TableSchema, events: EventInput[]): Promise<void> {
    const codec = new TableCodec(table, this.prefix);
    await this.schemaTopic.publish(codec.keyFingerprintHex, codec.keySchemaJson);
    await this.schemaTopic.publish(codec.valueFingerprintHex, codec.valueSchemaJson);
    const topic = this.topicOf(table);
    if (!this.topics.has(topic)) {
      const admin = this.kafka.admin();
      await admin.ensureTopic(topic, { partitions: this.partitions });
      await admin.close();
      this.topics.add(topic);
    }
    this.publisher ??= await this.kafka.publisher();
    const records: OutgoingRecord[] = [];
    for (const input of events) {
      const event = changeEvent(table, input);
      const value = codec.encodeEvent(event);
      const headers = {
        'teal.position': formatPosition(event.position),
        'teal.op': event.op,
        'teal.xid': '1',
      };
      if (input.partition !== undefined) {
        const key = event.op === 't' ? null : codec.encodeKey(event.key);
        records.push({ topic, partition: input.partition, key, value, headers });
      } else if (event.op === 't') {
        // A truncate goes to every partition: an ordering barrier everywhere.
        for (let p = 0; p < this.partitions; p++)
          records.push({ topic, partition: p, key: null, value, headers });
      } else {
        records.push({ topic, key: codec.encodeKey(event.key), value, headers });
      }
    }
    for (let i = 0; i < records.length; i += 5_000) await this.publisher.send(records.slice(i, i + 5_000));
  }

  async close(): Promise<void> {
    await this.schemaTopic.close();
    await this.publisher?.close();
  }
}
