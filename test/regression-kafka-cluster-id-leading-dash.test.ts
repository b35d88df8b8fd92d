// A fresh machine's `npm run env:up` failed once in 64: the broker's cluster id is random
// URL-safe base64, and one starting with '-' made kafka-storage's parser take it for an option
// ("argument --cluster-id/-t: expected one argument"), so the broker never formatted its storage.
import { describe, expect, it } from 'vitest';
import { newKafkaClusterId } from '../infra/local/lib/kafka.mjs';

describe('the local broker cluster id', () => {
  it('never starts with a dash and is a 16-byte Kafka Uuid', () => {
    // 4,000 draws: without the redraw, P(no leading '-') = (63/64)^4000 ≈ 4e-28.
    const ids = Array.from({ length: 4000 }, () => newKafkaClusterId());
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([]);
    for (const id of ids) expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
