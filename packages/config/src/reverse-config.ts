import type { Row } from '@teal/change-event';
import type { ResolvedConfig, ReverseTransform, TableTransform } from './define-config.ts';
import { normalizeTableName } from './table-names.ts';
import { deepFreeze } from './validate.ts';

// The reverse direction of a migration is a teal pipeline with blue and green swapped: its
// source is green, its target blue, its transforms the inverse of the forward ones. This
// module derives that pipeline's config from the forward one, purely, and names every forward
// transform it cannot invert, with the `reverse` entry of teal.config.ts that would settle it.
// It never guesses: a value blue had that green does not hold (a derive that replaced it, a
// cast blue's type may not take back, rows a filter kept from green) is a problem, not a row
// that fails later in the reverse apply.

export interface ReverseTable {
  /** "schema.table" as green has it (the reverse source). */
  greenTable: string;
  /** "schema.table" on blue (the reverse target). */
  blueTable: string;
  /** Green column -> blue column, for the columns written back as they are. */
  columns: Record<string, string>;
  /** Green columns not written back (derived by the forward transform, or green's own). */
  notWrittenBack: string[];
  /** Blue columns green lacks (dropped forward, or `reverse.keep`): kept on update, blue's default on insert. */
  blueOnly: string[];
  /** Blue columns the reverse computes from green's row (`reverse.derive`). */
  derivedBack: string[];
}

export interface ReverseProblem {
  table: string;
  column?: string;
  message: string;
  /** The `reverse` entry the operator can add to the table's transform in teal.config.ts. */
  declare: string;
}

export interface ReversePlan {
  config: ResolvedConfig;
  tables: ReverseTable[];
  problems: ReverseProblem[];
  /** Blue tables with `reverse: { ignore: true }`: not streamed back, blue keeps its rows as they are. */
  ignored: string[];
}

/** A column as the catalog has it; `type` is format_type(), unknown when left out. */
export interface CatalogColumn {
  name: string;
  type?: string;
  /** Part of the table's key (primary key or replica identity). */
  key?: boolean;
}

/** One replicated blue table with its columns on both sides (read at cutover, or from the recorded state). */
export interface ReverseCatalogTable {
  blueTable: string;
  blueColumns: readonly CatalogColumn[];
  greenColumns: readonly CatalogColumn[];
}

/** Suffix of the reverse pipeline's topic prefix, slot and publication. */
export const REVERSE_SUFFIX = '_reverse';

const UNBOUNDED_TEXT = new Set(['text', 'character varying']);
const INTEGERS = ['smallint', 'integer', 'bigint'];

/**
 * True when every text of green's type is accepted by blue's type with the same meaning, so a
 * cast column maps back by writing green's text into blue's column. Deliberately short: a pair
 * not listed needs an explicit `reverse.derive` (which states the operator's knowledge, e.g.
 * "every bigint we wrote still fits blue's integer").
 */
export function blueTypeAccepts(blueType: string, greenType: string): boolean {
  if (blueType === greenType || UNBOUNDED_TEXT.has(blueType)) return true;
  const bi = INTEGERS.indexOf(blueType);
  const gi = INTEGERS.indexOf(greenType);
  if (bi >= 0 && gi >= 0) return gi <= bi;
  if (blueType === 'numeric') return gi >= 0 || /^numeric(\(|$)/.test(greenType);
  const bn = /^numeric\((\d+),(\d+)\)$/.exec(blueType);
  const gn = /^numeric\((\d+),(\d+)\)$/.exec(greenType);
  if (bn && gn) {
    const [bp, bs, gp, gs] = [bn[1], bn[2], gn[1], gn[2]].map(Number);
    return gs <= bs && gp - gs <= bp - bs;
  }
  if (blueType === 'double precision')
    return greenType === 'real' || greenType === 'smallint' || greenType === 'integer';
  const bv = /^character varying\((\d+)\)$/.exec(blueType);
  const gv = /^character varying\((\d+)\)$/.exec(greenType);
  if (bv && gv) return Number(gv[1]) <= Number(bv[1]);
  return false;
}

function declarePath(blueTable: string): string {
  return `transforms[${JSON.stringify(blueTable)}].reverse`;
}

function greenTarget(blueTable: string, t: Readonly<TableTransform> | undefined): string {
  return normalizeTableName(t?.renameTo ?? blueTable);
}

/** The `<name>_reverse` of a slot or publication; a problem when it would pass Postgres's 63 bytes. */
function suffixed(name: string, what: string, problems: ReverseProblem[]): string {
  const out = `${name}${REVERSE_SUFFIX}`;
  if (out.length > 63) {
    problems.push({
      table: '*',
      message: `the reverse ${what} "${out}" is longer than 63 bytes`,
      declare: `a ${what} name of at most ${63 - REVERSE_SUFFIX.length} characters in teal.config.ts`,
    });
    return out.slice(0, 63);
  }
  return out;
}

interface TablePlanned {
  table: ReverseTable;
  transform: TableTransform;
}

function planTable(
  blueTable: string,
  t: Readonly<TableTransform> | undefined,
  catalog: ReverseCatalogTable | undefined,
  keyColumns: readonly string[] | undefined,
  problems: ReverseProblem[],
): TablePlanned {
  const greenTable = greenTarget(blueTable, t);
  const reverse: Readonly<ReverseTransform> = t?.reverse ?? {};
  const rename = t?.renameColumns ?? {};
  const dropped = new Set(t?.dropColumns ?? []);
  const forwardDerived = new Set(Object.keys(t?.derive ?? {}));
  const reverseDerive = reverse.derive ?? {};
  const keep = new Set(reverse.keep ?? []);
  const path = declarePath(blueTable);

  const columns: Record<string, string> = {};
  const notWrittenBack = new Set<string>();
  const blueOnly: string[] = [];
  const derivedBack: string[] = [];
  const greenTypes = new Map((catalog?.greenColumns ?? []).map((c) => [c.name, c.type]));
  const blueColumns: readonly CatalogColumn[] =
    catalog?.blueColumns ??
    // Without the catalog only the columns the transform names are known; the rest map to themselves.
    [
      ...new Set([
        ...Object.keys(rename),
        ...dropped,
        ...Object.keys(t?.cast ?? {}),
        ...Object.keys(reverseDerive),
        ...keep,
      ]),
    ].map((name) => ({ name }));
  const known = new Set(blueColumns.map((c) => c.name));

  for (const [column] of Object.entries(reverseDerive)) {
    if (catalog && !known.has(column)) {
      problems.push({
        table: blueTable,
        column,
        message: `${path}.derive names "${column}", which blue table ${blueTable} does not have`,
        declare: `a blue column of ${blueTable} as the key of ${path}.derive`,
      });
    }
  }

  for (const blue of blueColumns) {
    const b = blue.name;
    const g = dropped.has(b) ? undefined : (rename[b] ?? b);
    const isKey = blue.key === true || keyColumns?.includes(b) === true;
    if (Object.hasOwn(reverseDerive, b) || keep.has(b)) {
      if (isKey) {
        problems.push({
          table: blueTable,
          column: b,
          message: `key column "${b}" of ${blueTable} is written back as green has it; it cannot be derived or kept`,
          declare: `remove "${b}" from ${path}`,
        });
        continue;
      }
      if (Object.hasOwn(reverseDerive, b)) derivedBack.push(b);
      else blueOnly.push(b);
      if (g !== undefined && (!catalog || greenTypes.has(g))) notWrittenBack.add(g);
      continue;
    }
    if (g === undefined) {
      blueOnly.push(b);
      continue;
    }
    if (forwardDerived.has(g)) {
      problems.push({
        table: blueTable,
        column: b,
        message: `green's "${g}" of ${greenTable} is computed by derive "${g}", which replaced blue's "${b}": blue's value cannot be recovered from it`,
        declare: `${path} = { derive: { ${JSON.stringify(b)}: (green) => /* blue's text from green's row */ } } or { keep: [${JSON.stringify(b)}] } (blue keeps its value; new rows get its default)`,
      });
      continue;
    }
    if (catalog && !greenTypes.has(g)) {
      // Green never got it (apply.onMissingColumn 'ignore'): blue's value stays.
      blueOnly.push(b);
      continue;
    }
    const cast = t?.cast?.[b];
    const greenType = greenTypes.get(g);
    if (
      cast !== undefined &&
      blue.type !== undefined &&
      greenType !== undefined &&
      !blueTypeAccepts(blue.type, greenType)
    ) {
      problems.push({
        table: blueTable,
        column: b,
        message: `"${b}" is cast from blue's ${blue.type} to green's ${greenType}, and ${blue.type} does not take every ${greenType} value back`,
        declare: `${path} = { derive: { ${JSON.stringify(b)}: (green) => green[${JSON.stringify(g)}] } } (you vouch every value fits ${blue.type}, or convert it) or { keep: [${JSON.stringify(b)}] }`,
      });
      continue;
    }
    columns[g] = b;
  }
  // Green columns that no blue column became: the forward derives, and green's own additions.
  for (const d of forwardDerived) if (!Object.hasOwn(columns, d)) notWrittenBack.add(d);
  for (const g of greenTypes.keys()) if (!Object.hasOwn(columns, g)) notWrittenBack.add(g);

  if (t?.filter && !reverse.ignore) {
    problems.push({
      table: blueTable,
      message: `${blueTable} has a filter: the rows it kept from green are still on blue, so blue would never equal green after a rollback`,
      declare: `${path} = { ignore: true } (the table is not streamed back; blue keeps its rows as they are)`,
    });
  }

  const transform: TableTransform = {};
  if (normalizeTableName(blueTable) !== greenTable) transform.renameTo = blueTable;
  const renamed = Object.entries(columns).filter(([g, b]) => g !== b);
  if (renamed.length > 0) transform.renameColumns = Object.fromEntries(renamed);
  if (notWrittenBack.size > 0) transform.dropColumns = [...notWrittenBack];
  if (derivedBack.length > 0) {
    transform.derive = Object.fromEntries(
      derivedBack.map((b) => [b, reverseDerive[b] as (row: Readonly<Row>) => string | null]),
    );
  }
  return {
    table: { greenTable, blueTable, columns, notWrittenBack: [...notWrittenBack], blueOnly, derivedBack },
    transform,
  };
}

/**
 * The reverse pipeline's config: blue.url <-> green.url swapped, topic prefix `${p}_reverse`,
 * slot `${slot}_reverse`, publication `${publication}_reverse`, tables keyed by green's names
 * with the inverse transforms, its state in its target (blue). `catalog` (the replicated
 * tables with both sides' columns, read at cutover) makes the plan exact: without it only the
 * tables and columns the config names are known, and casts are not judged.
 */
export function reverseConfig(
  forward: ResolvedConfig,
  catalog?: readonly ReverseCatalogTable[],
): ReversePlan {
  const problems: ReverseProblem[] = [];
  const byTable = new Map((catalog ?? []).map((c) => [normalizeTableName(c.blueTable), c]));
  const blueTables = catalog
    ? [...byTable.keys()]
    : forward.tables === 'all'
      ? Object.keys(forward.transforms)
      : [...forward.tables];

  const tables: ReverseTable[] = [];
  const ignored: string[] = [];
  const transforms: Record<string, TableTransform> = {};
  const keyColumns: Record<string, string[]> = {};
  const ordered: Record<string, boolean> = {};
  for (const blueTable of blueTables) {
    const t = forward.transforms[blueTable];
    if (t?.reverse?.ignore) {
      ignored.push(blueTable);
      continue;
    }
    const keys = forward.keyColumns[blueTable];
    const planned = planTable(blueTable, t, byTable.get(blueTable), keys, problems);
    const { greenTable } = planned.table;
    tables.push(planned.table);
    if (Object.keys(planned.transform).length > 0) transforms[greenTable] = planned.transform;
    if (keys) keyColumns[greenTable] = keys.map((k) => t?.renameColumns?.[k] ?? k);
    if (Object.hasOwn(forward.ordered, blueTable)) ordered[greenTable] = forward.ordered[blueTable];
  }
  // A config naming tables by 'all' and no catalog: the reverse takes green's tables as they come.
  const list: string[] | 'all' =
    !catalog && forward.tables === 'all' && ignored.length === 0 ? 'all' : tables.map((t) => t.greenTable);

  const config: ResolvedConfig = deepFreeze({
    ...forward,
    blue: { url: forward.green.url },
    green: { url: forward.blue.url },
    kafka: { ...forward.kafka, topicPrefix: `${forward.kafka.topicPrefix}${REVERSE_SUFFIX}` },
    slot: suffixed(forward.slot, 'slot', problems),
    publication: suffixed(forward.publication, 'publication', problems),
    tables: list,
    transforms,
    // The reverse never reshapes blue: no tables created, no columns added.
    apply: {
      ...forward.apply,
      createTables: false,
      onMissingColumn: forward.apply.onMissingColumn === 'add' ? 'fail' : forward.apply.onMissingColumn,
    },
    keyColumns,
    ordered,
    // Online verify would put change-capture triggers on blue's tables; rollback verifies in full.
    verify: { onlineRowsPerSecond: 0 },
  });
  return { config, tables, problems, ignored };
}

/** The catalog a recorded plan stands for (names only), so `teal reverse` plans the same tables. */
export function catalogOf(tables: readonly ReverseTable[]): ReverseCatalogTable[] {
  return tables.map((t) => ({
    blueTable: t.blueTable,
    blueColumns: [...new Set([...Object.values(t.columns), ...t.blueOnly, ...t.derivedBack])].map((name) => ({
      name,
    })),
    greenColumns: [...new Set([...Object.keys(t.columns), ...t.notWrittenBack])].map((name) => ({ name })),
  }));
}

/** One line per problem: what cannot be inverted and what to declare. */
export function describeReverseProblems(problems: readonly ReverseProblem[]): string {
  return problems
    .map((p) => `${p.table}${p.column ? `.${p.column}` : ''}: ${p.message}; declare ${p.declare}`)
    .join('\n  - ');
}
