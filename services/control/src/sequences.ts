import type { TransformSet } from '@teal/config';
import { quoteTable } from '@teal/postgres/sql';
import type pg from 'pg';
import type { SequenceCopy } from './types.ts';

// Logical replication does not carry sequences, so cutover copies each one's last_value
// from blue to green. The green sequence is found, in order: the sequence green's renamed
// table owns on the renamed column (pg_get_serial_sequence; covers serial and identity),
// the same schema.name, then the same name in the renamed table's schema.

interface BlueSequence {
  schemaname: string;
  sequencename: string;
  last_value: string | null;
  table_schema: string | null;
  table_name: string | null;
  column_name: string | null;
}

export async function readBlueSequences(blue: pg.Client): Promise<BlueSequence[]> {
  const { rows } = await blue.query<BlueSequence>(
    `SELECT s.schemaname, s.sequencename, s.last_value::text AS last_value,
            tn.nspname AS table_schema, t.relname AS table_name, a.attname AS column_name
       FROM pg_sequences s
       JOIN pg_namespace n ON n.nspname = s.schemaname
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
       LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
       LEFT JOIN pg_class t ON t.oid = d.refobjid
       LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      WHERE s.schemaname <> 'teal' AND s.schemaname <> 'information_schema' AND s.schemaname NOT LIKE 'pg\\_%'
      ORDER BY 1, 2`,
  );
  return rows;
}

/** Green candidates for one blue sequence, most specific first. */
export function greenCandidates(
  seq: BlueSequence,
  transforms: TransformSet | undefined,
): { owned: { table: string; column: string } | null; names: Array<[schema: string, name: string]> } {
  const names: Array<[string, string]> = [[seq.schemaname, seq.sequencename]];
  let owned: { table: string; column: string } | null = null;
  if (seq.table_schema && seq.table_name && seq.column_name) {
    const target = transforms?.target(seq.table_schema, seq.table_name) ?? {
      schema: seq.table_schema,
      table: seq.table_name,
    };
    const column =
      transforms?.columnName(seq.table_schema, seq.table_name, seq.column_name) ?? seq.column_name;
    owned = { table: quoteTable(target.schema, target.table), column };
    if (target.schema !== seq.schemaname) names.push([target.schema, seq.sequencename]);
  }
  return { owned, names };
}

export interface CopySequencesOptions {
  /**
   * Rollback (issue 17): set a target sequence only when the source's next value is past the
   * target's own, so the max of the two wins and no sequence ever hands out a value again.
   */
  neverBackwards?: boolean;
}

// Both sides' "blue"/"green" below are source/target: rollback copies green -> blue with them.
export async function copySequences(
  blue: pg.Client,
  green: pg.Client,
  transforms: TransformSet | undefined,
  opts: CopySequencesOptions = {},
): Promise<SequenceCopy[]> {
  const out: SequenceCopy[] = [];
  for (const seq of await readBlueSequences(blue)) {
    const blueName = `${seq.schemaname}.${seq.sequencename}`;
    // pg_sequences.last_value is NULL both when the sequence was never called (or was
    // setval(..., false)) and when teal's role may not read it: read the sequence itself
    // to tell the two apart, and report an unreadable one as not copied.
    let isCalled = true;
    if (seq.last_value === null) {
      const direct = await readSequenceDirectly(blue, seq.schemaname, seq.sequencename);
      if ('error' in direct) {
        out.push({
          blue: blueName,
          green: null,
          value: null,
          ok: false,
          note: `not copied: cannot read it on blue (${direct.error}); grant SELECT on it to teal's blue role and run the cutover again`,
        });
        continue;
      }
      seq.last_value = direct.lastValue;
      isCalled = direct.isCalled;
    }
    const { owned, names } = greenCandidates(seq, transforms);
    let found: [string, string] | undefined;
    if (owned) {
      try {
        const { rows } = await green.query<{ schema: string; name: string }>(
          `SELECT n.nspname AS schema, c.relname AS name
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = (CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE pg_get_serial_sequence($1, $2) END)::regclass`,
          [owned.table, owned.column],
        );
        if (rows[0]) found = [rows[0].schema, rows[0].name];
      } catch {
        // Green lacks the column (42703): fall back to the sequence's name.
      }
    }
    for (const name of found ? [] : names) {
      const { rows } = await green.query<{ found: string }>(
        'SELECT EXISTS (SELECT 1 FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2)::text AS found',
        name,
      );
      if (rows[0]?.found === 'true') {
        found = name;
        break;
      }
    }
    if (!found) {
      out.push({
        blue: blueName,
        green: null,
        value: seq.last_value,
        ok: true,
        note: 'no such sequence in green: skipped',
      });
      continue;
    }
    const greenName = `${found[0]}.${found[1]}`;
    if (opts.neverBackwards) {
      const ahead = await targetAhead(green, found, seq.last_value, isCalled);
      if (ahead !== undefined) {
        out.push({
          blue: blueName,
          green: greenName,
          value: seq.last_value,
          ok: true,
          note: `left at ${ahead}: the target is at or past the source's ${seq.last_value} (a sequence never moves backwards)`,
        });
        continue;
      }
    }
    try {
      await green.query(`SELECT setval(format('%I.%I', $1::text, $2::text), $3::bigint, $4::boolean)`, [
        ...found,
        seq.last_value,
        isCalled,
      ]);
      out.push({
        blue: blueName,
        green: greenName,
        value: seq.last_value,
        ok: true,
        note: isCalled ? null : `not called yet on blue: green's next value is ${seq.last_value}`,
      });
    } catch (err) {
      out.push({
        blue: blueName,
        green: greenName,
        value: seq.last_value,
        ok: false,
        note: (err as Error).message,
      });
    }
  }
  return out;
}

/** last_value and is_called read from the sequence itself (pg_sequences hides them without privilege). */
async function readSequenceDirectly(
  blue: pg.Client,
  schema: string,
  name: string,
): Promise<{ lastValue: string; isCalled: boolean } | { error: string }> {
  try {
    const { rows } = await blue.query<{ last_value: string; is_called: string | boolean }>(
      `SELECT last_value::text AS last_value, is_called::text AS is_called FROM ${quoteTable(schema, name)}`,
    );
    if (!rows[0]) return { error: 'the sequence returned no row' };
    return { lastValue: rows[0].last_value, isCalled: String(rows[0].is_called) === 'true' };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * The target's last_value when its next value is at or past the source's (in the sequence's
 * direction), else undefined: then setting it to the source's moves it forward.
 */
async function targetAhead(
  target: pg.Client,
  [schema, name]: [string, string],
  sourceLast: string,
  sourceCalled: boolean,
): Promise<string | undefined> {
  const { rows } = await target.query<{ last_value: string; is_called: string; increment: string }>(
    `SELECT s.last_value::text AS last_value, s.is_called::text AS is_called,
            (SELECT increment_by::text FROM pg_sequences WHERE schemaname = $1 AND sequencename = $2) AS increment
       FROM ${quoteTable(schema, name)} AS s`,
    [schema, name],
  );
  const row = rows[0];
  if (!row) return undefined;
  const step = BigInt(row.increment);
  const next = (last: string, called: boolean) => BigInt(last) + (called ? step : 0n);
  const targetNext = next(row.last_value, row.is_called === 'true');
  const sourceNext = next(sourceLast, sourceCalled);
  const atOrPast = step > 0n ? targetNext >= sourceNext : targetNext <= sourceNext;
  return atOrPast ? row.last_value : undefined;
}
