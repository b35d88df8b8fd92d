import type { TableTransform } from './define-config.ts';
import { didYouMean } from './did-you-mean.ts';
import { normalizeTableName, parseTableName } from './table-names.ts';
import { checkKeys, columnName, describeValue, isObj, keyPath, type Problems, str } from './validate.ts';

// The table-shaped parts of teal.config.ts: the table list, transforms and key columns, with
// every name normalized to "schema.table" and the mappings checked against each other.

const TRANSFORM_KEYS = ['renameTo', 'renameColumns', 'dropColumns', 'cast', 'derive', 'filter', 'reverse'];
const REVERSE_KEYS = ['derive', 'keep', 'ignore'];
// A type name that can follow `::` safely: words, dots, typmods, array brackets, quoted names.
const TYPE_NAME =
  /^(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+")(?:\s*\.\s*(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+"))?(?:\s+[A-Za-z]+)*(?:\s*\(\s*\d+(?:\s*,\s*-?\d+)?\s*\))?(?:\s+[A-Za-z]+)*(?:\s*\[\d*\])*$/;

/** `tables`: an explicit list (normalized, no repeats) or 'all'. */
export function resolveTables(p: Problems, input: unknown): string[] | 'all' {
  if (input === undefined) return 'all';
  if (!Array.isArray(input)) {
    p.add('tables', `expected a list of "schema.table" or "table", got ${describeValue(input)}`);
    return 'all';
  }
  const seen = new Set<string>();
  const tables: string[] = [];
  input.forEach((t: unknown, i: number) => {
    if (typeof t !== 'string' || !parseTableName(t)) {
      p.add(`tables[${i}]`, `expected a table name "schema.table" or "table", got ${describeValue(t)}`);
      return;
    }
    const name = normalizeTableName(t);
    if (seen.has(name)) p.add(`tables[${i}]`, `${name} is listed twice; remove one`);
    seen.add(name);
    tables.push(name);
  });
  return tables;
}

export function resolveKeyColumns(p: Problems, input: unknown): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (input === undefined) return out;
  if (!isObj(input)) {
    p.add(
      'keyColumns',
      `expected an object { "schema.table": ["column", ...] }, got ${describeValue(input)}`,
    );
    return out;
  }
  for (const [tableKey, columns] of Object.entries(input)) {
    const path = `keyColumns[${JSON.stringify(tableKey)}]`;
    if (!parseTableName(tableKey)) {
      p.add(path, 'expected a table name "schema.table" or "table" as key');
      continue;
    }
    if (!Array.isArray(columns) || columns.length === 0) {
      p.add(path, `expected a non-empty list of column names, got ${describeValue(columns)}`);
      continue;
    }
    const list: string[] = [];
    columns.forEach((c: unknown, i: number) => {
      if (!columnName(c)) p.add(`${path}[${i}]`, `expected a column name string, got ${describeValue(c)}`);
      else if (list.includes(c)) p.add(`${path}[${i}]`, `column "${c}" is listed twice`);
      else list.push(c);
    });
    out[normalizeTableName(tableKey)] = list;
  }
  return out;
}

export function resolveTransforms(
  p: Problems,
  input: unknown,
  tables: readonly string[] | 'all',
): Record<string, TableTransform> {
  const out: Record<string, TableTransform> = {};
  if (input === undefined) return out;
  if (!isObj(input)) {
    p.add(
      'transforms',
      `expected an object { "schema.table": { renameTo, ... } }, got ${describeValue(input)}`,
    );
    return out;
  }
  const targets = new Map<string, string>();
  const written = new Map<string, string>();
  for (const [tableKey, value] of Object.entries(input)) {
    const path = `transforms[${JSON.stringify(tableKey)}]`;
    if (!parseTableName(tableKey)) {
      p.add(path, 'expected a blue table name "schema.table" or "table" as key');
      continue;
    }
    const blueName = normalizeTableName(tableKey);
    const first = written.get(blueName);
    if (first !== undefined) {
      p.add(path, `${blueName} has a transform twice (as "${first}" and "${tableKey}"); keep one`);
      continue;
    }
    written.set(blueName, tableKey);
    if (tables !== 'all' && !tables.includes(blueName)) {
      const hint = didYouMean(blueName, tables);
      p.add(path, `${blueName} is not in tables; add it there${hint ? ` or did you mean "${hint}"?` : ''}`);
    }
    if (!isObj(value)) {
      p.add(path, `expected an object { ${TRANSFORM_KEYS.join(', ')} }, got ${describeValue(value)}`);
      continue;
    }
    checkKeys(p, value, path, TRANSFORM_KEYS);
    const t: TableTransform = {};

    if (value.renameTo !== undefined) {
      const target = str(
        p,
        value.renameTo,
        `${path}.renameTo`,
        'a green table name "schema.table" or "table"',
        (s) => Boolean(parseTableName(s)),
      );
      if (target !== undefined) t.renameTo = normalizeTableName(target);
    }
    const greenName = t.renameTo ?? blueName;
    const other = targets.get(greenName);
    if (other !== undefined)
      p.add(path, `${blueName} and ${other} would both write green table ${greenName}`);
    targets.set(greenName, blueName);

    const greenColumns = new Map<string, string>();
    if (value.renameColumns !== undefined) {
      if (!isObj(value.renameColumns)) {
        p.add(
          `${path}.renameColumns`,
          `expected { blueColumn: "greenColumn" }, got ${describeValue(value.renameColumns)}`,
        );
      } else {
        t.renameColumns = {};
        for (const [from, to] of Object.entries(value.renameColumns)) {
          const cpath = keyPath(`${path}.renameColumns`, from);
          if (!columnName(to)) p.add(cpath, `expected a green column name string, got ${describeValue(to)}`);
          else if (greenColumns.has(to)) p.add(cpath, `"${greenColumns.get(to)}" is renamed to "${to}" too`);
          else {
            greenColumns.set(to, from);
            t.renameColumns[from] = to;
          }
        }
      }
    }
    if (value.dropColumns !== undefined) {
      if (!Array.isArray(value.dropColumns)) {
        p.add(
          `${path}.dropColumns`,
          `expected a list of column names, got ${describeValue(value.dropColumns)}`,
        );
      } else {
        t.dropColumns = [];
        value.dropColumns.forEach((c: unknown, i: number) => {
          const cpath = `${path}.dropColumns[${i}]`;
          if (!columnName(c)) p.add(cpath, `expected a column name string, got ${describeValue(c)}`);
          else if (t.dropColumns?.includes(c)) p.add(cpath, `"${c}" is listed twice`);
          else if (t.renameColumns?.[c] !== undefined)
            p.add(cpath, `"${c}" is both renamed and dropped; keep one`);
          else t.dropColumns?.push(c);
        });
      }
    }
    if (value.derive !== undefined) {
      if (!isObj(value.derive)) {
        p.add(
          `${path}.derive`,
          `expected { column: (row) => text | null }, got ${describeValue(value.derive)}`,
        );
      } else {
        t.derive = {};
        for (const [column, fn] of Object.entries(value.derive)) {
          const cpath = keyPath(`${path}.derive`, column);
          if (!columnName(column)) p.add(cpath, 'expected a column name (1-63 bytes) as key');
          else if (typeof fn !== 'function') {
            p.add(cpath, `expected a function (row) => string | null, got ${describeValue(fn)}`);
          } else if (greenColumns.has(column)) {
            p.add(cpath, `"${greenColumns.get(column)}" is renamed to "${column}" too; pick another name`);
          } else t.derive[column] = fn as (row: Readonly<Record<string, string | null>>) => string | null;
        }
      }
    }
    if (value.cast !== undefined) {
      if (!isObj(value.cast)) {
        p.add(`${path}.cast`, `expected { column: "postgres type" }, got ${describeValue(value.cast)}`);
      } else {
        t.cast = {};
        for (const [column, type] of Object.entries(value.cast)) {
          const cpath = keyPath(`${path}.cast`, column);
          if (typeof type !== 'string' || !TYPE_NAME.test(type.trim())) {
            p.add(
              cpath,
              `expected a Postgres type name like "numeric(12,2)" or "text[]", got ${describeValue(type)}`,
            );
          } else if (t.dropColumns?.includes(column)) {
            p.add(cpath, `"${column}" is dropped; remove the cast or the drop`);
          } else if (greenColumns.has(column) && t.renameColumns?.[column] === undefined) {
            p.add(cpath, `name the column by its blue name "${greenColumns.get(column)}"`);
          } else t.cast[column] = type.trim();
        }
      }
    }
    if (value.filter !== undefined) {
      if (typeof value.filter !== 'function') {
        p.add(`${path}.filter`, `expected a function (row) => boolean, got ${describeValue(value.filter)}`);
      } else t.filter = value.filter as TableTransform['filter'];
    }
    if (value.reverse !== undefined) {
      const reverse = resolveReverse(p, value.reverse, `${path}.reverse`);
      if (reverse) t.reverse = reverse;
    }
    out[blueName] = t;
  }
  // A renamed table must not land on a blue table that keeps its own name.
  for (const [greenName, blueName] of targets) {
    if (greenName !== blueName && Object.hasOwn(out, greenName) && out[greenName].renameTo === undefined) {
      p.add(
        `transforms[${JSON.stringify(written.get(blueName))}].renameTo`,
        `${greenName} is also blue table ${greenName}'s target; rename one of them`,
      );
    }
    if (
      greenName !== blueName &&
      tables !== 'all' &&
      tables.includes(greenName) &&
      !Object.hasOwn(out, greenName)
    ) {
      p.add(
        `transforms[${JSON.stringify(written.get(blueName))}].renameTo`,
        `${greenName} is also replicated under its own name; rename one of them`,
      );
    }
  }
  return out;
}

/** `transforms[t].reverse`: { derive: { blueColumn: (greenRow) => text }, keep: [blueColumn], ignore: true }. */
function resolveReverse(p: Problems, value: unknown, path: string): TableTransform['reverse'] {
  if (!isObj(value)) {
    p.add(path, `expected an object { ${REVERSE_KEYS.join(', ')} }, got ${describeValue(value)}`);
    return undefined;
  }
  checkKeys(p, value, path, REVERSE_KEYS);
  const out: NonNullable<TableTransform['reverse']> = {};
  if (value.derive !== undefined) {
    if (!isObj(value.derive)) {
      p.add(
        `${path}.derive`,
        `expected { blueColumn: (greenRow) => text | null }, got ${describeValue(value.derive)}`,
      );
    } else {
      out.derive = {};
      for (const [column, fn] of Object.entries(value.derive)) {
        const cpath = keyPath(`${path}.derive`, column);
        if (!columnName(column)) p.add(cpath, 'expected a blue column name (1-63 bytes) as key');
        else if (typeof fn !== 'function')
          p.add(cpath, `expected a function (greenRow) => string | null, got ${describeValue(fn)}`);
        else out.derive[column] = fn as (row: Readonly<Record<string, string | null>>) => string | null;
      }
    }
  }
  if (value.keep !== undefined) {
    if (!Array.isArray(value.keep)) {
      p.add(`${path}.keep`, `expected a list of blue column names, got ${describeValue(value.keep)}`);
    } else {
      out.keep = [];
      value.keep.forEach((c: unknown, i: number) => {
        const cpath = `${path}.keep[${i}]`;
        if (!columnName(c)) p.add(cpath, `expected a column name string, got ${describeValue(c)}`);
        else if (out.derive?.[c] !== undefined)
          p.add(cpath, `"${c}" is both derived back and kept; keep one`);
        else if (!out.keep?.includes(c)) out.keep?.push(c);
      });
    }
  }
  if (value.ignore !== undefined) {
    if (value.ignore !== true)
      p.add(`${path}.ignore`, `expected true (or leave it out), got ${describeValue(value.ignore)}`);
    else out.ignore = true;
  }
  return out;
}

/** `ordered: { "schema.table": boolean }` -> the same, names normalized. */
export function resolveOrdered(p: Problems, input: unknown): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  if (input === undefined) return out;
  if (!isObj(input)) {
    p.add('ordered', `expected an object { "schema.table": true | false }, got ${describeValue(input)}`);
    return out;
  }
  for (const [tableKey, value] of Object.entries(input)) {
    const path = `ordered[${JSON.stringify(tableKey)}]`;
    if (!parseTableName(tableKey)) p.add(path, 'expected a table name "schema.table" or "table" as key');
    else if (typeof value !== 'boolean') p.add(path, `expected true or false, got ${describeValue(value)}`);
    else out[normalizeTableName(tableKey)] = value;
  }
  return out;
}
