import type { PgText } from '@teal/change-event';

// COPY's text format, both ways (PostgreSQL docs, "COPY", File Formats / Text Format): one
// row per line, columns separated by a tab, NULL as \N, and backslash escapes for backslash,
// newline, carriage return, tab (\b \f \v too; \digits octal and \xhex on input). COPY TO
// never writes a raw newline inside a value, so a line is a row. Pure: rows as Postgres text.

const ESCAPES: Readonly<Record<string, string>> = {
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

function unescapeField(field: string): string {
  let out = '';
  let i = 0;
  while (i < field.length) {
    const at = field.indexOf('\\', i);
    if (at < 0) return out + field.slice(i);
    out += field.slice(i, at);
    const c = field[at + 1];
    if (c === undefined) return out;
    const simple = ESCAPES[c];
    if (simple !== undefined) {
      out += simple;
      i = at + 2;
    } else if (c >= '0' && c <= '7') {
      const m = /^[0-7]{1,3}/.exec(field.slice(at + 1, at + 4))![0];
      out += String.fromCharCode(Number.parseInt(m, 8) & 0xff);
      i = at + 1 + m.length;
    } else if (c === 'x' && /^[0-9a-fA-F]/.test(field[at + 2] ?? '')) {
      const m = /^[0-9a-fA-F]{1,2}/.exec(field.slice(at + 2, at + 4))![0];
      out += String.fromCharCode(Number.parseInt(m, 16));
      i = at + 2 + m.length;
    } else {
      out += c;
      i = at + 2;
    }
  }
  return out;
}

/** One line of COPY text (without its newline) -> its values, in column order. */
export function parseCopyLine(line: string): PgText[] {
  const fields = line.split('\t');
  const out: PgText[] = new Array(fields.length);
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    out[i] = f === '\\N' ? null : f.includes('\\') ? unescapeField(f) : f;
  }
  return out;
}

const NEEDS_ESCAPE = /[\\\n\r\t]/;
const ESCAPE_ALL = /[\\\n\r\t]/g;
const ESCAPED: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Values -> one line of COPY text, newline included. */
export function formatCopyLine(values: readonly PgText[]): string {
  let out = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += '\t';
    if (v === null || v === undefined) out += '\\N';
    else out += NEEDS_ESCAPE.test(v) ? v.replace(ESCAPE_ALL, (c) => ESCAPED[c]) : v;
  }
  return `${out}\n`;
}

/** Splits arriving COPY text into whole lines, whatever the chunk boundaries. */
export class CopyLineSplitter {
  private rest = '';

  /** The complete lines in `text` after what earlier calls left over. */
  push(text: string): string[] {
    const all = this.rest + text;
    const lines = all.split('\n');
    this.rest = lines.pop() ?? '';
    return lines;
  }

  /** At the end of the data: a last line without newline is an error of the caller's source. */
  end(): string {
    const rest = this.rest;
    this.rest = '';
    return rest;
  }
}
