import { lineChart } from './chart.js';
import { bytes, count, fill, generic, h, progress, seconds, table, value } from './render.js';

// The status page: polls /status and /status/history every 2 s (one poll at a time) and
// renders them. With a token configured the API answers only with it: the page asks once,
// keeps it in sessionStorage (this tab only) and sends it as a bearer header. The action
// buttons show only when the API answered /status, i.e. when this page may act.

const POLL_MS = 2_000;
const TOKEN_KEY = 'teal.apiToken';
const $ = (id) => document.getElementById(id);

let busy = false;

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (token()) headers.authorization = `Bearer ${token()}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  // Relative: the API's own origin, and its path prefix when behind a proxy.
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => null);
  if (res.status === 401) throw new Unauthorized(json?.error?.message ?? 'unauthorized');
  if (!res.ok) {
    const err = new Error(json?.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${res.status}`);
    err.details = json?.error?.details;
    throw err;
  }
  return json;
}

function showLogin(message) {
  $('main').hidden = true;
  $('actions').hidden = true;
  $('forget').hidden = !token();
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('state').textContent = 'locked';
  $('state').className = 'badge';
}

let pollSeq = 0;

async function poll() {
  // The timer, an action and the token form all poll: only the newest answer is drawn, so a
  // slow older one never paints over it.
  const seq = ++pollSeq;
  try {
    const [status, history] = await Promise.all([api('GET', 'status'), api('GET', 'status/history')]);
    if (seq !== pollSeq) return;
    $('login').hidden = true;
    $('main').hidden = false;
    $('actions').hidden = false;
    $('forget').hidden = !token();
    $('error').textContent = '';
    render(status, history);
  } catch (err) {
    if (seq !== pollSeq) return;
    if (err instanceof Unauthorized) {
      const had = token() !== '';
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(had ? `the API refused the token: ${err.message}` : '');
    } else {
      $('error').textContent = `status failed: ${err.message}`;
    }
  }
}

async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}

function render(s, history) {
  $('state').textContent = s.state;
  $('state').className = `badge state-${s.state}`;
  // The reverse pipeline (teal reverse) streams green -> blue: its source, the side it fences, is green.
  const reverse = s.direction === 'reverse';
  fill(
    $('flags'),
    reverse ? h('span', { class: 'flag', 'data-testid': 'direction' }, 'reverse: green → blue') : null,
    s.paused ? h('span', { class: 'flag', 'data-testid': 'paused' }, 'paused') : null,
    s.fenced
      ? h('span', { class: 'flag', 'data-testid': 'fenced' }, reverse ? 'green fenced' : 'blue fenced')
      : null,
  );
  // A reverse process rolls back; a forward one cuts over (with or without the way back).
  for (const b of document.querySelectorAll('#actions button[data-direction]'))
    b.hidden = b.dataset.direction !== (reverse ? 'reverse' : 'forward');
  $('checked').textContent = `checked ${new Date(s.checkedAt).toLocaleTimeString()}`;
  $('checked').dataset.value = s.checkedAt;

  fill(
    $('warnings'),
    s.warnings.length === 0
      ? h('li', { class: 'muted' }, 'none')
      : s.warnings.map((w) => h('li', { class: 'warn' }, w)),
  );

  const slot = s.slot;
  const big = (label, testid, v, text, cls) =>
    h(
      'div',
      { class: `number ${cls ?? ''}` },
      value('strong', v, text, { 'data-testid': testid }),
      h('span', {}, label),
    );
  // The newest sample's commit→green (the history's own measure; /status has no such field).
  const known = history.samples.filter((p) => p.commitToGreenSeconds !== null);
  const commitToGreen = known.length > 0 ? known[known.length - 1].commitToGreenSeconds : null;
  fill(
    $('numbers'),
    big('commit → green (last sample)', 'commit-to-green', commitToGreen, seconds(commitToGreen)),
    big('commit → Kafka (slot lag)', 'slot-lag-seconds', slot?.lagSeconds, seconds(slot?.lagSeconds)),
    big(
      'WAL retained',
      'retained-wal',
      slot?.retainedWalBytes,
      bytes(slot?.retainedWalBytes),
      slot ? `level-${slot.level}` : '',
    ),
    big('records waiting in Kafka', 'lag-records', s.consumer.lagRecords, count(s.consumer.lagRecords)),
    big(
      'dead letters',
      'dead-letters',
      s.consumer.deadLetters,
      count(s.consumer.deadLetters),
      s.consumer.deadLetters > 0 ? 'level-warn' : '',
    ),
    big(
      'blocked partitions',
      'blocked-count',
      s.consumer.blocked.length,
      count(s.consumer.blocked.length),
      s.consumer.blocked.length > 0 ? 'level-critical' : '',
    ),
  );

  renderCharts(history);

  fill(
    $('snapshot'),
    table(
      s.producer?.snapshot ?? [],
      [
        { title: 'table', cell: (r) => r.table },
        { title: 'state', cell: (r) => r.state },
        {
          title: 'rows',
          cell: (r) => value('td', r.rowsDone, count(r.rowsDone), { 'data-testid': 'rows-done' }),
        },
        { title: 'estimated', cell: (r) => value('td', r.rowsEstimated, count(r.rowsEstimated)) },
        {
          title: '',
          cell: (r) => h('td', { class: 'wide' }, progress(r.rowsDone, r.rowsEstimated, r.state === 'done')),
        },
      ],
      {
        testid: 'snapshot-table',
        empty: 'no snapshot reported',
        rowAttrs: (r) => ({ 'data-table': r.table }),
      },
    ),
  );

  fill(
    $('partitions'),
    table(
      s.consumer.partitions,
      [
        { title: 'topic', cell: (r) => r.topic },
        { title: 'partition', cell: (r) => r.partition },
        {
          title: 'applied offset',
          cell: (r) => value('td', r.appliedOffset, count(r.appliedOffset), { 'data-testid': 'applied' }),
        },
        { title: 'end', cell: (r) => value('td', r.end, count(r.end), { 'data-testid': 'end' }) },
        { title: 'lag', cell: (r) => value('td', r.lag, count(r.lag), { 'data-testid': 'lag' }) },
        { title: 'position', cell: (r) => r.appliedPosition ?? '–' },
        { title: 'blocked', cell: (r) => (r.blocked ? h('span', { class: 'bad' }, r.blocked) : '') },
      ],
      {
        testid: 'partitions-table',
        empty: 'no topic yet',
        rowAttrs: (r) => ({ 'data-partition': `${r.topic}:${r.partition}` }),
      },
    ),
  );

  fill(
    $('blocked'),
    table(
      s.consumer.blocked,
      [
        { title: 'topic', cell: (r) => r.topic },
        { title: 'partition', cell: (r) => r.partition },
        { title: 'reason', cell: (r) => h('td', { class: 'bad' }, r.reason) },
      ],
      { testid: 'blocked-table', empty: 'none' },
    ),
  );

  // Rendered whatever its shape: another part of teal owns it.
  $('verify-box').hidden = s.onlineVerify === undefined;
  if (s.onlineVerify !== undefined) fill($('verify'), generic(s.onlineVerify));

  fill(
    $('slot'),
    slot
      ? generic({
          name: slot.name,
          exists: slot.exists,
          active: slot.active,
          walStatus: slot.walStatus,
          currentLsn: slot.currentLsn,
          confirmedLsn: slot.confirmedLsn,
          restartLsn: slot.restartLsn,
          lag: bytes(slot.lagBytes),
          retained: bytes(slot.retainedWalBytes),
          level: slot.level,
        })
      : h('p', { class: 'muted' }, 'no slot'),
  );
  fill(
    $('components'),
    generic({
      producer: s.producer
        ? {
            state: s.producer.state,
            source: s.producer.source,
            confirmedLsn: s.producer.confirmedLsn,
            lastShipped: s.producer.lastShippedPosition,
            error: s.producer.error,
          }
        : null,
      consumer: { state: s.consumer.state, error: s.consumer.error },
    }),
  );
}

function renderCharts(history) {
  const samples = history.samples;
  const now = Date.now();
  const fromMs = samples.length > 0 ? Math.min(Date.parse(samples[0].at), now - 60_000) : now - 60_000;
  const series = (key, label, cls, pick) => ({
    key,
    label,
    cls,
    values: samples.map((p) => [Date.parse(p.at), pick(p)]),
  });
  const legend = (list) =>
    h(
      'div',
      { class: 'legend' },
      list.map((s) => h('span', { class: `key ${s.cls}` }, s.label)),
    );
  const lag = [
    series('commitToGreen', 'commit → green', 's1', (p) => p.commitToGreenSeconds),
    series('slotLag', 'commit → Kafka (slot)', 's2', (p) => p.slotLagSeconds),
  ];
  const wal = [series('retainedWal', 'retained WAL', 's3', (p) => p.retainedWalBytes)];
  fill($('chart-lag'), lineChart(lag, { fromMs, toMs: now, format: seconds, logFloor: 0.01 }), legend(lag));
  fill($('chart-wal'), lineChart(wal, { fromMs, toMs: now, format: bytes, binary: true }), legend(wal));
  $('chart-lag').dataset.samples = String(samples.length);
}

// ---- actions ----

function showResult(...nodes) {
  fill($('action-result'), ...nodes);
}

function drainResult(d) {
  return h(
    'div',
    { class: 'result' },
    h(
      'p',
      {},
      'Drained: everything committed on blue up to ',
      value('code', d.lsn, d.lsn, { 'data-testid': 'drain-lsn' }),
      ' is in green.',
    ),
    generic({
      clean: d.clean,
      deadLetters: d.deadLetters.total,
      targetLsn: d.targetLsn,
      confirmedLsn: d.confirmedLsn,
      waitedMs: d.waitedMs,
      fenced: d.fenced,
    }),
  );
}

function cutoverResult(r) {
  // A rollback's report has the cutover's shape, with direction "rollback": the switch is back to blue.
  const to = r.direction === 'rollback' ? 'blue' : 'green';
  return h(
    'div',
    { class: 'result', 'data-testid': 'cutover-report' },
    h(
      'p',
      {
        class: r.safeToSwitch ? 'ok' : 'bad',
        'data-testid': 'safe-to-switch',
        'data-value': String(r.safeToSwitch),
      },
      r.safeToSwitch ? `Safe to switch to ${to}.` : `NOT safe to switch to ${to}.`,
    ),
    r.rollback
      ? h(
          'p',
          { 'data-testid': 'rollback-prepared' },
          'Way back prepared: reverse slot ',
          h('code', {}, r.rollback.slot),
          ' on green at ',
          h('code', {}, r.rollback.lsn),
          '; run teal reverse.',
        )
      : null,
    r.drainLsn
      ? h('p', {}, 'Drained to ', value('code', r.drainLsn, r.drainLsn, { 'data-testid': 'cutover-lsn' }))
      : null,
    table(
      r.steps,
      [
        { title: 'step', cell: (s) => s.name },
        { title: 'ok', cell: (s) => h('td', { class: s.ok ? 'ok' : 'bad' }, s.ok ? 'yes' : 'no') },
        { title: 'ms', cell: (s) => value('td', s.ms, count(s.ms)) },
        { title: 'details', cell: (s) => s.details },
      ],
      { testid: 'cutover-steps' },
    ),
    h('h3', {}, 'Sequences'),
    generic(r.sequences),
    h('h3', {}, 'Verify'),
    r.verify
      ? generic({
          ok: r.verify.ok,
          durationMs: r.verify.durationMs,
          tables: r.verify.tables.map((t) => ({
            blue: t.blue,
            green: t.green,
            ok: t.ok,
            blueRows: t.blueRows,
            greenRows: t.greenRows,
          })),
        })
      : h('span', { class: 'muted' }, 'not run'),
    r.warnings.length > 0
      ? h(
          'ul',
          {},
          r.warnings.map((w) => h('li', { class: 'warn' }, w)),
        )
      : null,
  );
}

const ACTIONS = {
  pause: {
    run: () => api('POST', 'pause', {}),
    show: (r) => h('p', {}, r.paused ? 'Paused.' : 'Not paused.'),
  },
  resume: {
    run: () => api('POST', 'resume', {}),
    show: (r) => h('p', {}, r.paused ? 'Still paused.' : 'Resumed.'),
  },
  drain: { run: () => api('POST', 'drain', {}), show: drainResult },
  cutover: {
    confirm:
      'Cutover fences blue (new sessions read-only, open sessions terminated), drains, copies sequences and verifies. Go on?',
    run: () => api('POST', 'cutover', {}),
    show: cutoverResult,
  },
  'cutover-rollback': {
    confirm:
      'Cutover fences blue, drains, copies sequences and verifies; when safe it also creates the reverse slot and publication on green for teal reverse. Go on?',
    run: () => api('POST', 'cutover', { withRollback: true }),
    show: cutoverResult,
  },
  rollback: {
    confirm:
      'Rollback fences green (new sessions read-only, open sessions terminated), drains the reverse pipeline, copies sequences back to blue, verifies blue and unfences it. Go on?',
    run: () => api('POST', 'rollback', {}),
    show: cutoverResult,
  },
};

async function act(name, button) {
  const a = ACTIONS[name];
  if (busy || (a.confirm && !window.confirm(a.confirm))) return;
  busy = true;
  for (const b of document.querySelectorAll('#actions button')) b.disabled = true;
  showResult(
    h('p', { class: 'muted', 'data-testid': 'running' }, `${button.textContent.replace('…', '')} running…`),
  );
  try {
    showResult(a.show(await a.run()));
  } catch (err) {
    if (err instanceof Unauthorized) showLogin(err.message);
    showResult(
      h('p', { class: 'bad', 'data-testid': 'action-error' }, `${name} failed: ${err.message}`),
      err.details ? generic(err.details) : null,
    );
  } finally {
    busy = false;
    for (const b of document.querySelectorAll('#actions button')) b.disabled = false;
    poll();
  }
}

for (const b of document.querySelectorAll('#actions button'))
  b.addEventListener('click', () => act(b.dataset.action, b));

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  poll();
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
  poll();
});

loop();
