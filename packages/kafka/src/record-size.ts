import { TealError } from '@teal/errors';
import type { OutgoingRecord } from './types.ts';

// How large a record is where the broker measures it: `max.message.bytes` bounds a whole
// record batch (v2 format: a 61-byte header, then each record framed by varints), and one
// send's records of one partition form one batch. The publisher keeps batches under the
// topic's limit with these numbers; they are upper bounds (varints at their widest).

/** The header of a v2 record batch: what a record sent alone adds to its own bytes. */
export const RECORD_BATCH_OVERHEAD = 61;

/** A record's framing at most: length, attributes, timestamp and offset deltas, key, value and header-count lengths. */
const RECORD_FRAMING = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/** Per header: name and value lengths. */
const HEADER_FRAMING = 10;

/** Bytes the record takes in a record batch (an upper bound). */
export function recordBytes(record: OutgoingRecord): number {
  let bytes = RECORD_FRAMING + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  const headers = record.headers;
  if (headers)
    for (const name in headers)
      bytes += HEADER_FRAMING + Buffer.byteLength(name) + Buffer.byteLength(headers[name]!);
  return bytes;
}

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/**
 * Whether the broker refused records for their size, anywhere in a nested error: kafkajs
 * names the answer in `type` (wrapped in `originalError` or `cause` after its retries),
 * platformatic in `apiId` (inside `errors` of a MultipleErrors).
 */
export function brokerSaidTooLarge(err: unknown, depth = 0): boolean {
  if (err === null || typeof err !== 'object' || depth > 6) return false;
  const e = err as {
    type?: unknown;
    apiId?: unknown;
    cause?: unknown;
    originalError?: unknown;
    errors?: unknown;
  };
  if (TOO_LARGE.has(String(e.type)) || TOO_LARGE.has(String(e.apiId))) return true;
  if (brokerSaidTooLarge(e.cause, depth + 1) || brokerSaidTooLarge(e.originalError, depth + 1)) return true;
  return Array.isArray(e.errors) && e.errors.some((inner) => brokerSaidTooLarge(inner, depth + 1));
}

/**
 * The broker's "too large" answer as teal's error. Not retriable: the same records would be
 * refused again (sending them again forever is what issue 12 found). The EventPublisher
 * names the table and key of the largest record on top of this.
 */
export function tooLargeError(err: unknown, records: readonly OutgoingRecord[]): TealError {
  let largest: OutgoingRecord | undefined;
  let largestBytes = 0;
  for (const r of records) {
    const bytes = recordBytes(r);
    if (bytes > largestBytes) {
      largest = r;
      largestBytes = bytes;
    }
  }
  return new TealError(
    'TEAL_ROW_TOO_LARGE',
    `Kafka refused a record of ${largestBytes} bytes to ${largest?.topic ?? 'a topic'} as too large ` +
      "(the topic's max.message.bytes, or the broker's message.max.bytes for a topic without one, is lower): " +
      "raise the topic's max.message.bytes (kafka-configs --alter --entity-type topics " +
      `--entity-name ${largest?.topic ?? '<topic>'} --add-config max.message.bytes=<bytes>) and start teal again`,
    { cause: err, details: { topic: largest?.topic, bytes: largestBytes } },
  );
}
