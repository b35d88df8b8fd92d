import { randomBytes } from 'node:crypto';

// Names of the tests' own objects (tables, slots, topics, databases); no vitest import, so the
// global setup can use it too.

const MAX_NAME = 40;

/**
 * A name no other test (or earlier run) uses: lowercase letters, digits and `_`, starting
 * with a letter and at most 40 characters, so it is valid unquoted as a Postgres
 * identifier, as a replication slot name (63 max) and as a Kafka topic name, with room
 * left for a prefix such as `teal.public.`.
 */
export function uniqueName(prefix: string): string {
  let clean = prefix.toLowerCase().replace(/[^a-z0-9_]+/g, '_');
  if (!/^[a-z]/.test(clean)) clean = `t_${clean}`;
  const suffix = `${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  return `${clean.slice(0, MAX_NAME - suffix.length - 1)}_${suffix}`;
}

/**
 * When uniqueName() made `name` (or a name that starts with one, such as `<name>_slot`), in ms
 * since the epoch; undefined for any other name. The test setup uses it to tell an interrupted
 * run's leftover from a running test's.
 */
export function uniqueNameMadeAt(name: string): number | undefined {
  const m = /_([0-9a-z]{8,9})_[0-9a-f]{8}(?:_|$)/.exec(name);
  if (!m) return undefined;
  const ms = Number.parseInt(m[1], 36);
  // Between 2020 and 2100: anything else is some other name that happens to look alike.
  return ms > 1.58e12 && ms < 4.1e12 ? ms : undefined;
}
