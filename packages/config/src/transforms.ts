import type { Row } from '@teal/change-event';
import { TealError } from '@teal/errors';
import type { ResolvedConfig, TableTransform } from './define-config.ts';
import { didYouMean } from './did-you-mean.ts';
import { parseTableName, qualifiedName } from './table-names.ts';

// Transforms are pure functions of one blue row, compiled once from the config. The same
// TransformSet serves the snapshot, the stream and verify, so all three write and compare
// the same green rows. User functions see blue's row as blue has it (Postgres text) through
// a read-only view; reading a column the row does not carry is an error rather than a
// silent undefined, because that is how an unchanged-TOAST update would corrupt a derived value.

export interface TransformSet {
  /** The green table a blue table is written to. */
  target(schema: string, table: string): { schema: string; table: string };
  /**
   * The green row for a blue row (renamed, dropped, derived; cast columns keep their text and
   * are cast on write, see castType), or null when the filter rejects it. May return `row`
   * itself when the table has no transform. Throws TEAL_TRANSFORM_FAILED (not retriable).
   */
  applyRow(schema: string, table: string, row: Row): Row | null;
  /** Blue column name -> green column name, null when dropped. */
  columnName(schema: string, table: string, column: string): string | null;
  /** Blue column for a green column; undefined for derived columns. */
  blueColumn(schema: string, table: string, greenColumn: string): string | undefined;
  /** Target type for `$n::type` of a green column, when the config casts it. */
  castType(schema: string, table: string, greenColumn: string): string | undefined;
  derivedColumns(schema: string, table: string): string[];
  /**
   * True when a derive or filter may read columns that an UPDATE with unchanged TOAST
   * values lacks: the consumer must complete the row before applyRow.
   */
  needsFullRow(schema: string, table: string): boolean;
  /** True when the table has a filter (a row may leave green on update). */
  hasFilter(schema: string, table: string): boolean;
  /**
   * Checks the table's transform against blue's actual columns and key; throws
   * TEAL_CONFIG_INVALID naming every unknown or conflicting column.
   */
  checkTable(table: {
    schema: string;
    table: string;
    columns: readonly { name: string }[];
    keyColumns: readonly string[];
  }): void;
}

interface Compiled {
  readonly blueName: string;
  readonly target: { schema: string; table: string };
  readonly rename: ReadonlyMap<string, string>;
  readonly inverse: ReadonlyMap<string, string>;
  readonly drop: ReadonlySet<string>;
  /** green column -> type */
  readonly cast: ReadonlyMap<string, string>;
  readonly derive: readonly (readonly [string, (row: Readonly<Row>) => string | null])[];
  readonly filter: ((row: Readonly<Row>) => boolean) | undefined;
  readonly source: Readonly<TableTransform>;
}

function transformFailed(
  table: string,
  transform: 'derive' | 'filter',
  column: string | undefined,
  message: string,
  cause?: unknown,
): TealError {
  const what = column === undefined ? transform : `${transform} "${column}"`;
  return new TealError('TEAL_TRANSFORM_FAILED', `transform ${what} of table ${table} ${message}`, {
    retriable: false,
    cause,
    details: { table, transform, column },
  });
}

/**
 * Calls a user function with a read-only view of the row; collects the names of columns it
 * reads that the row does not carry.
 */
function callGuarded<T>(row: Row, fn: (row: Readonly<Row>) => T): { value: T; missing: string[] } {
  const missing: string[] = [];
  const view = new Proxy(Object.freeze({ ...row }), {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && !Object.hasOwn(target, prop) && !(prop in Object.prototype)) {
        if (!missing.includes(prop)) missing.push(prop);
      }
      return Reflect.get(target, prop, receiver);
    },
  });
  return { value: fn(view), missing };
}

function describeMissing(missing: string[], row: Row): string {
  return (
    `read column${missing.length === 1 ? '' : 's'} ${missing.map((m) => `"${m}"`).join(', ')} that the row does not carry ` +
    `(it has: ${Object.keys(row).join(', ') || 'nothing'}); check the name in teal.config.ts, or the value is an unchanged TOAST value the consumer did not complete`
  );
}

function compile(blueName: string, t: Readonly<TableTransform>): Compiled {
  const target = t.renameTo ? parseTableName(t.renameTo) : parseTableName(blueName);
  if (!target)
    throw new TealError('TEAL_CONFIG_INVALID', `transforms["${blueName}"].renameTo: not a table name`);
  const rename = new Map(Object.entries(t.renameColumns ?? {}));
  const inverse = new Map([...rename].map(([from, to]) => [to, from] as const));
  const drop = new Set(t.dropColumns ?? []);
  const derive = Object.entries(t.derive ?? {});
  const derived = new Set(derive.map(([name]) => name));
  const cast = new Map<string, string>();
  for (const [column, type] of Object.entries(t.cast ?? {})) {
    cast.set(derived.has(column) ? column : (rename.get(column) ?? column), type);
  }
  return {
    blueName,
    target: { schema: target.schema, table: target.table },
    rename,
    inverse,
    drop,
    cast,
    derive,
    filter: t.filter,
    source: t,
  };
}

/** Compiles the config's transforms. Tables without a transform pass through unchanged. */
export function compileTransforms(config: Pick<ResolvedConfig, 'transforms'>): TransformSet {
  const compiled = new Map<string, Compiled>();
  for (const [name, t] of Object.entries(config.transforms)) compiled.set(name, compile(name, t));
  const get = (schema: string, table: string) => compiled.get(qualifiedName(schema, table));

  return {
    target(schema, table) {
      const c = get(schema, table);
      return c ? { ...c.target } : { schema, table };
    },

    applyRow(schema, table, row) {
      const c = get(schema, table);
      if (!c) return row;
      if (c.filter) {
        let result: { value: unknown; missing: string[] };
        try {
          result = callGuarded(row, c.filter);
        } catch (err) {
          throw transformFailed(
            c.blueName,
            'filter',
            undefined,
            `threw: ${(err as Error)?.message ?? err}`,
            err,
          );
        }
        if (result.missing.length > 0) {
          throw transformFailed(c.blueName, 'filter', undefined, describeMissing(result.missing, row));
        }
        if (typeof result.value !== 'boolean') {
          throw transformFailed(
            c.blueName,
            'filter',
            undefined,
            `returned ${typeof result.value}; a filter returns true (replicate) or false (skip)`,
          );
        }
        if (!result.value) return null;
      }
      const out: Row = {};
      for (const column of Object.keys(row)) {
        if (c.drop.has(column)) continue;
        out[c.rename.get(column) ?? column] = row[column];
      }
      for (const [column, fn] of c.derive) {
        let result: { value: unknown; missing: string[] };
        try {
          result = callGuarded(row, fn);
        } catch (err) {
          throw transformFailed(
            c.blueName,
            'derive',
            column,
            `threw: ${(err as Error)?.message ?? err}`,
            err,
          );
        }
        if (result.missing.length > 0) {
          throw transformFailed(c.blueName, 'derive', column, describeMissing(result.missing, row));
        }
        if (result.value !== null && typeof result.value !== 'string') {
          throw transformFailed(
            c.blueName,
            'derive',
            column,
            `returned ${result.value === undefined ? 'undefined' : typeof result.value}; return Postgres text (a string, e.g. String(n)) or null`,
          );
        }
        out[column] = result.value;
      }
      return out;
    },

    columnName(schema, table, column) {
      const c = get(schema, table);
      if (!c) return column;
      if (c.drop.has(column)) return null;
      return c.rename.get(column) ?? column;
    },

    blueColumn(schema, table, greenColumn) {
      const c = get(schema, table);
      if (!c) return greenColumn;
      if (c.derive.some(([name]) => name === greenColumn)) return undefined;
      const from = c.inverse.get(greenColumn);
      if (from !== undefined) return from;
      return c.drop.has(greenColumn) || c.rename.has(greenColumn) ? undefined : greenColumn;
    },

    castType(schema, table, greenColumn) {
      return get(schema, table)?.cast.get(greenColumn);
    },

    derivedColumns(schema, table) {
      return get(schema, table)?.derive.map(([name]) => name) ?? [];
    },

    needsFullRow(schema, table) {
      const c = get(schema, table);
      return c !== undefined && (c.filter !== undefined || c.derive.length > 0);
    },

    hasFilter(schema, table) {
      return get(schema, table)?.filter !== undefined;
    },

    checkTable({ schema, table, columns, keyColumns }) {
      const c = get(schema, table);
      if (!c) return;
      const names = columns.map((col) => col.name);
      const problems: string[] = [];
      const path = `transforms[${JSON.stringify(c.blueName)}]`;
      const unknown = (where: string, column: string) => {
        if (names.includes(column)) return false;
        const hint = didYouMean(column, names);
        problems.push(
          `${where}: blue table ${c.blueName} has no column "${column}"${hint ? `; did you mean "${hint}"?` : ''}`,
        );
        return true;
      };
      for (const from of c.rename.keys()) unknown(`${path}.renameColumns[${JSON.stringify(from)}]`, from);
      (c.source.dropColumns ?? []).forEach((column, i) => {
        if (!unknown(`${path}.dropColumns[${i}]`, column) && keyColumns.includes(column)) {
          problems.push(
            `${path}.dropColumns[${i}]: "${column}" is a key column of ${c.blueName} and cannot be dropped`,
          );
        }
      });
      const derived = new Set(c.derive.map(([name]) => name));
      for (const column of Object.keys(c.source.cast ?? {})) {
        if (!derived.has(column)) unknown(`${path}.cast[${JSON.stringify(column)}]`, column);
      }
      const reverse = c.source.reverse;
      for (const column of Object.keys(reverse?.derive ?? {}))
        unknown(`${path}.reverse.derive[${JSON.stringify(column)}]`, column);
      (reverse?.keep ?? []).forEach((column, i) => {
        unknown(`${path}.reverse.keep[${i}]`, column);
      });
      // Two blue columns must not land on one green column (derived columns replace on purpose).
      const landed = new Map<string, string>();
      for (const name of names) {
        if (c.drop.has(name)) continue;
        const green = c.rename.get(name) ?? name;
        const other = landed.get(green);
        if (other !== undefined) {
          const renamed = c.rename.has(name) ? name : other;
          problems.push(
            `${path}.renameColumns[${JSON.stringify(renamed)}]: green column "${green}" would receive both "${other}" and "${name}"; drop or rename the other one`,
          );
        }
        landed.set(green, name);
      }
      if (problems.length > 0) {
        throw new TealError(
          'TEAL_CONFIG_INVALID',
          `transform of ${c.blueName} does not fit blue's table:\n  - ${problems.join('\n  - ')}`,
          { status: 400, details: { problems } },
        );
      }
    },
  };
}
