// DOM building for the status page: elements are made with createElement and text nodes
// only (never innerHTML), so a table name, a warning or a blocked reason is shown as text,
// whatever it holds. Every number keeps its exact value in data-value for the browser test.

/** h('td', { 'data-value': 3 }, '3') */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${n < 0 ? '-' : ''}${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[u]}`;
}

export function seconds(s) {
  if (s === null || s === undefined) return '–';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 && !Number.isInteger(s) ? 1 : 0)} s`;
  return `${(s / 60).toFixed(s % 60 === 0 ? 0 : 1)} min`;
}

export function count(n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
}

/** A cell or figure carrying its exact value. */
export function value(tag, v, text, attrs = {}) {
  return h(tag, { ...attrs, 'data-value': v === null || v === undefined ? '' : v }, text);
}

/** A table from rows and columns [{ title, cell(row) -> Node|string }]; an empty note instead when no row. */
export function table(rows, columns, opts = {}) {
  if (rows.length === 0) return h('p', { class: 'muted' }, opts.empty ?? 'none');
  return h(
    'table',
    { 'data-testid': opts.testid },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', {}, c.title)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((r) => {
        const tr = h('tr', opts.rowAttrs ? opts.rowAttrs(r) : {});
        for (const c of columns) {
          const cell = c.cell(r);
          tr.append(cell instanceof Node && cell.tagName === 'TD' ? cell : h('td', {}, cell));
        }
        return tr;
      }),
    ),
  );
}

/** Any JSON value, readably: objects as definition lists, arrays of objects as tables. */
export function generic(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '–');
  if (Array.isArray(v)) {
    if (v.length === 0) return h('span', { class: 'muted' }, 'none');
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
      const keys = [...new Set(v.flatMap((x) => Object.keys(x)))];
      return table(
        v,
        keys.map((k) => ({ title: k, cell: (row) => h('td', {}, generic(row[k])) })),
      );
    }
    return h('span', {}, v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', '));
  }
  if (typeof v === 'object') {
    return h(
      'dl',
      { class: 'kv' },
      Object.entries(v).flatMap(([k, x]) => [h('dt', {}, k), h('dd', { 'data-key': k }, generic(x))]),
    );
  }
  if (typeof v === 'boolean') return h('span', { class: v ? 'ok' : 'bad' }, v ? 'yes' : 'no');
  if (typeof v === 'number') return value('span', v, count(v));
  return h('span', {}, String(v));
}

/** A progress bar: done of total (total null: unknown; finished: full, whatever the estimate said). */
export function progress(done, total, finished = false) {
  const pct = finished ? 100 : total ? Math.min(100, (done / total) * 100) : null;
  const bar = h('div', { class: 'bar' });
  // Through the CSSOM: the page's CSP refuses style attributes.
  bar.style.width = `${pct === null ? 0 : pct.toFixed(1)}%`;
  return h('div', { class: 'progress', title: pct === null ? 'total unknown' : `${pct.toFixed(1)} %` }, bar);
}
