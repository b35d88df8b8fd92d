import type { PgText } from '@teal/change-event';
import type { CompareRow } from './verify-diff.ts';
import type { TablePlan } from './verify-plan.ts';

// Where green's type is not blue's, blue's text is compared after green's own input
// function, `(value::type)::text`, as the consumer's `$n::type` does on write. This file
// builds those casts and puts their results back in place; the casting itself runs in green
// (CastRunner, given by the run), so nothing here touches a server.

/** Casts each column's texts through its chain of types in green, same order, NULL stays NULL. */
export type CastRunner = (chains: readonly string[][], columns: PgText[][]) => Promise<PgText[][]>;

export function castExpr(expr: string, chain: readonly string[]): string {
  return `${chain.reduce((inner, type) => `(${inner})::${type}`, `(${expr})`)}::text`;
}

/** One statement for all columns of a batch: `$i::text[]` per column, zipped by unnest. */
export function castBatchSql(chains: readonly string[][]): string {
  const select = chains.map((chain, i) => castExpr(`x.c${i}`, chain)).join(', ');
  const names = chains.map((_, i) => `c${i}`).join(', ');
  const unnest = chains.map((_, i) => `$${i + 1}::text[]`).join(', ');
  return `SELECT ${select} FROM unnest(${unnest}) WITH ORDINALITY AS x(${names}, ord) ORDER BY x.ord`;
}

/** Stands for a value green's type rejects; the NUL byte keeps it from ever equalling green's text. */
export function notValidFor(chain: readonly string[], message: string): string {
  return `\u0000not valid for ${chain.join('::')}: ${message}`;
}

/** A notValidFor() mark (no Postgres text holds a NUL byte, so none can be sent as a value either). */
export const isNotValidMark = (value: PgText): boolean => value?.startsWith('\u0000') ?? false;

/** Expected rows and the upper key bound, with the values green's types would store. */
export async function normalizeChunk(
  cast: CastRunner,
  plan: Pick<TablePlan, 'keyCasts' | 'compared'>,
  expected: { key: PgText[]; values: PgText[] }[],
  upperBlueKey: PgText[] | null,
): Promise<{ rows: CompareRow[]; upper: PgText[] | null }> {
  const chains: string[][] = [];
  const inputs: PgText[][] = [];
  const writeBack: ((values: PgText[]) => void)[] = [];
  plan.keyCasts.forEach((chain, i) => {
    if (chain.length === 0) return;
    chains.push(chain);
    const column = expected.map((e) => e.key[i]);
    if (upperBlueKey) column.push(upperBlueKey[i]);
    inputs.push(column);
    writeBack.push((out) => {
      expected.forEach((e, j) => {
        e.key[i] = out[j];
      });
      if (upperBlueKey) upperBlueKey[i] = out[expected.length];
    });
  });
  plan.compared.forEach((c, i) => {
    if (c.casts.length === 0) return;
    chains.push(c.casts);
    inputs.push(expected.map((e) => e.values[i]));
    writeBack.push((out) => {
      expected.forEach((e, j) => {
        e.values[i] = out[j];
      });
    });
  });
  if (chains.length > 0) {
    const byLength = new Map<number, number[]>();
    inputs.forEach((column, i) => {
      byLength.set(column.length, [...(byLength.get(column.length) ?? []), i]);
    });
    // unnest() zips columns of one length; key columns carry the bound as one extra value.
    for (const indices of byLength.values()) {
      const out = await cast(
        indices.map((i) => chains[i]),
        indices.map((i) => inputs[i]),
      );
      indices.forEach((i, j) => {
        writeBack[i](out[j]);
      });
    }
  }
  return { rows: expected, upper: upperBlueKey };
}
