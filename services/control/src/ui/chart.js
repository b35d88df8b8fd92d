// A hand-written SVG line chart: time on x (the history's window, ending now), one line per
// series, y from 0 to a rounded maximum (or logarithmic). null values break the line (a gap,
// not a zero).

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 200;
const PAD = { left: 64, right: 12, top: 12, bottom: 26 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** 1, 2 or 5 times a power of ten, at least `v`. */
function niceCeiling(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** A linear axis from 0 to a rounded maximum (binary: rounded in kB, MB, GB as bytes are shown). */
function linearAxis(max, binary) {
  const unit = binary && max >= 1024 ? 1024 ** Math.floor(Math.log(max) / Math.log(1024)) : 1;
  const top = niceCeiling(max / unit) * unit;
  return { at: (v) => v / top, ticks: [0, top / 2, top] };
}

/**
 * A logarithmic axis from `floor` to a power of ten (values below the floor, 0 included, sit
 * on it): lag spans 10 ms to minutes, and a snapshot's minutes must not flatten a stream's
 * 100 ms into the baseline.
 */
function logAxis(max, floor) {
  const lo = Math.log10(floor);
  const hi = Math.max(lo + 2, Math.ceil(Math.log10(Math.max(max, floor))));
  const ticks = [];
  for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
  return { at: (v) => (Math.log10(Math.max(v, floor)) - lo) / (hi - lo), ticks };
}

/**
 * series: [{ key, label, cls, values: [[timeMs, number|null], ...] }]
 * opts: { fromMs, toMs, format(v) -> string, logFloor?: number (a log axis from it), binary?: boolean }
 */
export function lineChart(series, opts) {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
  const max = Math.max(0, ...series.flatMap((s) => s.values.map(([, v]) => v ?? 0)));
  const axis = opts.logFloor ? logAxis(max, opts.logFloor) : linearAxis(max, opts.binary);
  const span = Math.max(1, opts.toMs - opts.fromMs);
  const x = (t) => PAD.left + ((t - opts.fromMs) / span) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - axis.at(v) * (H - PAD.top - PAD.bottom);

  for (const tick of axis.ticks) {
    const yy = y(tick);
    root.append(svg('line', { x1: PAD.left, x2: W - PAD.right, y1: yy, y2: yy, class: 'grid' }));
    root.append(
      svg('text', { x: PAD.left - 6, y: yy + 4, class: 'tick', 'text-anchor': 'end' }, opts.format(tick)),
    );
  }
  const minutes = Math.round(span / 60_000);
  root.append(
    svg(
      'text',
      { x: PAD.left, y: H - 6, class: 'tick' },
      minutes >= 1 ? `−${minutes} min` : `−${Math.round(span / 1000)} s`,
    ),
  );
  root.append(svg('text', { x: W - PAD.right, y: H - 6, class: 'tick', 'text-anchor': 'end' }, 'now'));

  for (const s of series) {
    let d = '';
    const values = s.values;
    const known = (i) => i >= 0 && i < values.length && values[i][1] !== null && values[i][1] !== undefined;
    values.forEach(([t, v], i) => {
      if (!known(i)) return;
      const px = x(t).toFixed(1);
      const py = y(v).toFixed(1);
      d += `${known(i - 1) ? 'L' : 'M'}${px} ${py} `;
      // A point with gaps on both sides is a short dash, so that it shows.
      if (!known(i - 1) && !known(i + 1)) d += `h2 `;
    });
    const points = values.filter(([, v]) => v !== null && v !== undefined);
    const [lastAt, last] = points.length > 0 ? points[points.length - 1] : [null, null];
    root.append(
      svg('path', {
        d: d.trim() || 'M0 0',
        class: `line ${s.cls}`,
        'data-series': s.key,
        'data-points': points.length,
        'data-max': Math.max(0, ...points.map(([, v]) => v)),
        'data-last': last ?? '',
        'data-last-at': lastAt === null ? '' : new Date(lastAt).toISOString(),
      }),
    );
  }
  return root;
}
