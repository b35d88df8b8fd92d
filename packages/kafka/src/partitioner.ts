// The partition of a key, the same whichever client writes it: the Java client's (and kafkajs's)
// DefaultPartitioner, toPositive(murmur2(key)) % partitions. It is computed here with 32-bit
// integer math: platformatic's own default partitioner uses `murmur2 >>> 0` (another partition
// for every key whose hash is negative) and BigInt arithmetic (slow), so it is not used.

const M = 0x5bd1e995;

/** The Java client's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int. */
export function murmur2(data: Buffer): number {
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[length4 + 2]! << 16;
    if (rest >= 2) h ^= data[length4 + 1]! << 8;
    h ^= data[length4]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** toPositive(murmur2(key)): the hash a partition count divides (the Java client's `toPositive`). */
export function positiveHash(key: Buffer): number {
  return murmur2(key) & 0x7fffffff;
}

/** The Java client's (and kafkajs's) default partition of a key; test/kafka-adapter.test.ts checks it. */
export function partitionForKey(key: Buffer, partitionCount: number): number {
  return positiveHash(key) % partitionCount;
}
