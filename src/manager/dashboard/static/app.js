// The dashboard's browser side. It renders what the manager's aggregator pushes once a second over
// /dashboard/live and acts through the public /api routes; it never receives individual task events.
import { colourFor, LineChart } from './chart.js';

const HISTORY = 300;
const STATUS = {
  online: { icon: '●', text: 'Online' },
  busy: { icon: '◐', text: 'Busy' },
  offline: { icon: '○', text: 'Offline' },
  error: { icon: '✕', text: 'Error' },
};
const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);
const RETRYABLE = new Set(['failed', 'cancelled', 'timed_out']);

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

// --- token: ?token= once (then removed from the address bar), else the tab's session storage ---
const state = {
  token: sessionStorage.getItem('fleet.token') ?? '',
  access: 'unknown',
  history: [],
  snapshot: undefined,
  tasks: [],
  filter: { state: '', type: '' },
  ws: undefined,
  retryMs: 500,
};
{
  const url = new URL(location.href);
  const t = url.searchParams.get('token');
  if (t !== null) {
    state.token = t;
    sessionStorage.setItem('fleet.token', t);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
}

function withToken(path) {
  if (!state.token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(state.token)}`;
}

async function api(path, init = {}) {
  const headers = { accept: 'application/json', ...(init.headers ?? {}) };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { ...init, headers });
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = new Error(body?.error?.message ?? `HTTP ${res.status}`);
    err.code = body?.error?.code;
    err.status = res.status;
    throw err;
  }
  return body;
}

// --- notices and confirmation ---
let noticeTimer;
function notice(text, kind = 'error') {
  const n = $('#notice');
  n.textContent = text;
  n.dataset.kind = kind;
  n.hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== 'error') noticeTimer = setTimeout(() => (n.hidden = true), 6000);
}

function confirmAction(title, text) {
  const dialog = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('#confirm-ok').focus();
  });
}

async function act(title, text, path, done) {
  if (!(await confirmAction(title, text))) return;
  try {
    await api(path, { method: 'POST' });
    notice(done, 'ok');
  } catch (err) {
    notice(`${title} refused: ${err.message}`);
  }
}

// --- formatting ---
function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const mb = (bytes) => (bytes > 0 ? `${(bytes / 1048576).toFixed(0)} MB` : '–');
function dur(ms) {
  if (ms == null) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

// --- the status board: one tbody per type (a totals row, then the workers), updated in place ---
const groups = new Map();

function workerRow(w) {
  const tr = el('tr', { dataset: { workerId: w.id } });
  const bar = el('span', { class: 'bar-fill' });
  tr.append(
    el('th', { scope: 'row', class: 'wid' }, el('span', { class: 'id' }), el('span', { class: 'endpoint muted' })),
    el('td', { class: 'status-cell' }, el('span', { class: 'status' })),
    el('td', { class: 'load' }, el('span', { class: 'bar', 'aria-hidden': 'true' }, bar), el('span', { class: 'pct' })),
    el('td', { class: 'tasks-n' }),
    el('td', { class: 'hb' }),
    el('td', { class: 'uptime' }),
    el('td', { class: 'mem' }),
    el('td', { class: 'detail-cell wide-only' }),
    el(
      'td',
      { class: 'actions' },
      el('button', {
        type: 'button',
        class: 'drain',
        text: 'Drain',
        onclick: () =>
          act(
            'Drain worker',
            `Drain ${tr.dataset.workerId}? It finishes its running tasks and takes no new ones.`,
            `/api/workers/${encodeURIComponent(tr.dataset.workerId)}/drain`,
            `Drain requested for ${tr.dataset.workerId}.`,
          ),
      }),
      el('button', {
        type: 'button',
        class: 'restart',
        text: 'Restart',
        onclick: () =>
          act(
            'Restart worker',
            `Restart ${tr.dataset.workerId}? Its running tasks are re-queued.`,
            `/api/workers/${encodeURIComponent(tr.dataset.workerId)}/restart`,
            `Restart requested for ${tr.dataset.workerId}.`,
          ),
      }),
    ),
  );
  return tr;
}

function updateWorkerRow(tr, w) {
  tr.dataset.status = w.status;
  tr.dataset.draining = String(w.draining);
  $('.id', tr).textContent = w.id;
  $('.endpoint', tr).textContent = w.endpoint;
  const s = STATUS[w.status] ?? { icon: '?', text: w.status };
  const status = $('.status', tr);
  status.className = `status status-${w.status}`;
  status.textContent = `${s.icon} ${s.text}${w.draining ? ' (draining)' : ''}`;
  const pct = Math.round((w.load ?? 0) * 100);
  const fill = $('.bar-fill', tr);
  fill.style.width = `${Math.min(100, pct)}%`;
  fill.dataset.level = pct >= 90 ? 'high' : pct >= 60 ? 'mid' : 'low';
  $('.pct', tr).textContent = `${pct}%`;
  $('.tasks-n', tr).textContent = `${w.inFlight}/${w.max}`;
  const hb = $('.hb', tr);
  hb.textContent = `${age(w.heartbeatAgeMs)} ago`;
  hb.dataset.stale = String(w.status !== 'offline' && w.heartbeatAgeMs > 5000);
  $('.uptime', tr).textContent = w.status === 'offline' ? '–' : age(w.uptimeS * 1000);
  $('.mem', tr).textContent = w.status === 'offline' ? '–' : mb(w.memory);
  const d = $('.detail-cell', tr);
  d.textContent = w.detail ?? '';
  d.dataset.warn = String(Boolean(w.detailWarn));
  $('.drain', tr).disabled = w.status === 'offline' || w.draining;
}

function renderBoard(snapshot) {
  const table = $('#board');
  const byType = new Map();
  for (const w of snapshot.workers) {
    if (!byType.has(w.type)) byType.set(w.type, []);
    byType.get(w.type).push(w);
  }
  const types = snapshot.types.filter((t) => byType.has(t.type) || t.queued > 0);
  for (const [type, g] of groups) {
    if (!types.some((t) => t.type === type)) {
      g.tbody.remove();
      groups.delete(type);
    }
  }
  let online = 0;
  let total = 0;
  for (const t of types) {
    let g = groups.get(t.type);
    if (!g) {
      const head = el('tr', { class: 'type-row' }, el('th', { scope: 'rowgroup', colspan: '9' }));
      g = { tbody: el('tbody', { dataset: { type: t.type } }, head), head, rows: new Map() };
      groups.set(t.type, g);
    }
    table.append(g.tbody); // keeps type order; a no-op move when already last
    const load = t.capacity > 0 ? Math.round((t.inFlight / t.capacity) * 100) : 0;
    g.head.firstChild.textContent =
      `${t.type} — ${t.online + t.busy} of ${t.workers} online` +
      (t.busy ? ` (${t.busy} busy)` : '') +
      (t.offline ? `, ${t.offline} offline` : '') +
      (t.error ? `, ${t.error} in error` : '') +
      ` · tasks ${t.inFlight}/${t.capacity} (${load}%) · ${t.queued} queued`;
    online += t.online + t.busy;
    total += t.workers;
    const workers = byType.get(t.type) ?? [];
    const seen = new Set();
    let prev = g.head;
    for (const w of workers) {
      seen.add(w.id);
      let tr = g.rows.get(w.id);
      if (!tr) {
        tr = workerRow(w);
        g.rows.set(w.id, tr);
      }
      updateWorkerRow(tr, w);
      if (prev.nextSibling !== tr) prev.after(tr);
      prev = tr;
    }
    for (const [id, tr] of g.rows) if (!seen.has(id)) (tr.remove(), g.rows.delete(id));
  }
  $('#board-summary').textContent = `— ${online} of ${total} online`;
  $('#board-empty').hidden = snapshot.workers.length > 0;
}

// --- alerts ---
function renderAlerts(alerts) {
  const box = $('#alerts');
  const now = state.snapshot?.t ?? Date.now();
  box.replaceChildren(
    ...alerts.map((a) =>
      el(
        'div',
        { class: `alert alert-${a.severity}`, dataset: { kind: a.kind, key: a.key } },
        el('strong', { text: a.severity === 'error' ? 'Error: ' : 'Warning: ' }),
        el('span', { text: a.message }),
        el('span', { class: 'muted', text: ` (for ${age(now - a.since)})` }),
      ),
    ),
  );
}

// --- scaling decisions ---
function renderScaling(decisions = []) {
  $('#scaling').hidden = decisions.length === 0;
  const now = state.snapshot?.t ?? Date.now();
  $('#scaling-list').replaceChildren(
    ...decisions.map((d) =>
      el(
        'li',
        { dataset: { action: d.action, type: d.workerType } },
        el('strong', {
          text: `${d.workerType} ${d.action === 'refused' ? 'refused' : `${d.current} → ${d.desired}`}: `,
        }),
        el('span', { text: d.reason }),
        el('span', {
          class: 'muted',
          text: ` (in flight ${d.inputs.inFlight}, queued ${d.inputs.queued}, capacity ${d.inputs.capacity}; ${age(now - d.at)} ago)`,
        }),
      ),
    ),
  );
}

// --- charts ---
const charts = {
  throughput: new LineChart($('#chart-throughput canvas')),
  queue: new LineChart($('#chart-queue canvas'), { integer: true }),
  latency: new LineChart($('#chart-latency canvas'), {
    format: (v, decimals) => (v >= 1000 ? `${Number((v / 1000).toFixed(3))}s` : v.toFixed(decimals)),
  }),
  memory: new LineChart($('#chart-memory canvas')),
};

function setChart(id, chart, series, nowText) {
  const times = state.history.map((p) => p.t);
  chart.setData({ times, series });
  const fig = document.getElementById(id);
  $('.legend', fig).replaceChildren(
    ...series.map((s) =>
      el(
        'li',
        {},
        el('span', { class: `swatch${s.dashed ? ' dashed' : ''}`, 'aria-hidden': 'true', dataset: { colour: s.colour ?? colourFor(s.key) } }),
        s.label,
      ),
    ),
  );
  for (const sw of fig.querySelectorAll('.swatch')) sw.style.borderColor = sw.dataset.colour;
  $('.now', fig).textContent = nowText;
  fig.dataset.points = String(times.length);
}

function renderCharts() {
  const h = state.history;
  const last = h[h.length - 1];
  const types = new Set();
  const workers = new Set();
  for (const p of h) {
    for (const t of Object.keys(p.types)) types.add(t);
    for (const w of Object.keys(p.memory)) workers.add(w);
  }
  const tl = [...types].sort();
  const thr = [];
  for (const t of tl) {
    thr.push({ key: t, label: `${t} completed`, values: h.map((p) => p.types[t]?.completed ?? 0) });
    thr.push({ key: t, label: `${t} failed`, dashed: true, values: h.map((p) => p.types[t]?.failed ?? 0) });
  }
  const recent = h.slice(-5);
  const rate = (t, f) => recent.reduce((n, p) => n + (p.types[t]?.[f] ?? 0), 0) / Math.max(1, recent.length);
  setChart(
    'chart-throughput',
    charts.throughput,
    thr,
    tl.length ? tl.map((t) => `${t}: ${rate(t, 'completed').toFixed(1)}/s completed, ${rate(t, 'failed').toFixed(1)}/s failed`).join(' · ') : 'no tasks finished yet',
  );

  const qTypes = new Set();
  for (const p of h) for (const [t, n] of Object.entries(p.queueByType)) if (n > 0) qTypes.add(t);
  setChart(
    'chart-queue',
    charts.queue,
    [
      { key: 'queue:all', label: 'all', colour: '#374151', values: h.map((p) => p.queue) },
      ...[...qTypes].sort().map((t) => ({ key: t, label: t, dashed: true, values: h.map((p) => p.queueByType[t] ?? 0) })),
    ],
    last ? `${last.queue} waiting` : '',
  );

  const lat = [];
  for (const t of tl) {
    lat.push({ key: t, label: `${t} p50`, values: h.map((p) => p.types[t]?.p50 ?? null) });
    lat.push({ key: t, label: `${t} p95`, dashed: true, values: h.map((p) => p.types[t]?.p95 ?? null) });
  }
  const lastLat = (t, f) => {
    for (let i = h.length - 1; i >= 0; i--) if (h[i].types[t]?.[f] != null) return h[i].types[t][f];
    return null;
  };
  setChart(
    'chart-latency',
    charts.latency,
    lat,
    tl.map((t) => `${t}: p50 ${dur(lastLat(t, 'p50'))}, p95 ${dur(lastLat(t, 'p95'))}`).join(' · '),
  );

  const wl = [...workers].sort();
  setChart(
    'chart-memory',
    charts.memory,
    wl.map((w) => ({ key: w, label: w, values: h.map((p) => (p.memory[w] != null ? p.memory[w] / 1048576 : null)) })),
    last ? Object.entries(last.memory).map(([w, b]) => `${w}: ${mb(b)}`).join(' · ') : '',
  );
}

// --- tasks ---
function taskRow(t) {
  const tr = el('tr', { dataset: { taskId: t.id } });
  tr.append(
    el('th', { scope: 'row' }, el('button', { type: 'button', class: 'link open', onclick: () => openDetail(tr.dataset.taskId) })),
    el('td', { class: 'state' }),
    el('td', { class: 'cap' }),
    el('td', { class: 'worker' }),
    el('td', { class: 'attempt' }),
    el('td', { class: 'dur' }),
    el(
      'td',
      { class: 'actions' },
      el('button', { type: 'button', class: 'cancel', text: 'Cancel', onclick: () => cancelTask(tr.dataset.taskId) }),
      el('button', { type: 'button', class: 'retry', text: 'Retry', onclick: () => retryTask(tr.dataset.taskId) }),
    ),
  );
  return tr;
}

function updateTaskRow(tr, t, now) {
  tr.dataset.state = t.state;
  $('.open', tr).textContent = t.id.length > 24 ? `${t.id.slice(0, 8)}…${t.id.slice(-8)}` : t.id;
  $('.open', tr).title = `Show task ${t.id}`;
  const st = $('.state', tr);
  st.textContent = t.state.replace('_', ' ');
  st.className = `state state-${t.state}`;
  st.title = t.error ?? '';
  $('.cap', tr).textContent = t.type && t.type !== t.capability ? `${t.capability} (${t.type})` : t.capability;
  $('.worker', tr).textContent = t.workerId ?? '–';
  $('.attempt', tr).textContent = `${t.attempt}/${t.maxAttempts}`;
  $('.dur', tr).textContent = t.durationMs != null ? dur(t.durationMs) : t.startedAt ? `${dur(now - t.startedAt)} …` : '–';
  $('.cancel', tr).hidden = FINAL.has(t.state);
  $('.retry', tr).hidden = !RETRYABLE.has(t.state);
}

const taskRows = new Map();
function renderTasks() {
  const tbody = $('#tasks tbody');
  const now = state.snapshot?.t ?? Date.now();
  const seen = new Set();
  let prev = null;
  for (const t of state.tasks) {
    seen.add(t.id);
    let tr = taskRows.get(t.id);
    if (!tr) {
      tr = taskRow(t);
      taskRows.set(t.id, tr);
    }
    updateTaskRow(tr, t, now);
    const want = prev ? prev.nextSibling : tbody.firstChild;
    if (want !== tr) (prev ? prev.after(tr) : tbody.prepend(tr));
    prev = tr;
  }
  for (const [id, tr] of taskRows) if (!seen.has(id)) (tr.remove(), taskRows.delete(id));
  $('#tasks-empty').hidden = state.tasks.length > 0;
  const totals = state.snapshot?.totals;
  if (totals) $('#task-totals').textContent = `— ${totals.completed} completed, ${totals.failed} failed, ${totals.cancelled} cancelled since the manager started`;
}

function cancelTask(id) {
  return act('Cancel task', `Cancel task ${id}?`, `/api/tasks/${encodeURIComponent(id)}/cancel`, `Task ${id} cancelled.`);
}
function retryTask(id) {
  return act('Retry task', `Retry task ${id} with a fresh attempt budget?`, `/api/tasks/${encodeURIComponent(id)}/retry`, `Task ${id} re-queued.`);
}

function renderTypeFilter(types) {
  const select = $('#filter-type');
  const have = new Set([...select.options].map((o) => o.value));
  for (const t of types) if (!have.has(t.type)) select.append(el('option', { value: t.type, text: t.type }));
}

// --- task detail ---
async function openDetail(id) {
  const dialog = $('#detail');
  const body = $('#detail-body');
  $('#detail-title').textContent = `Task ${id}`;
  body.replaceChildren(el('p', { class: 'muted', text: 'loading…' }));
  if (!dialog.open) dialog.showModal();
  let t;
  try {
    ({ task: t } = await api(`/dashboard/api/tasks/${encodeURIComponent(id)}`));
  } catch (err) {
    body.replaceChildren(el('p', { class: 'error', text: err.message }));
    return;
  }
  const fields = [
    ['State', t.state.replace('_', ' ')],
    ['Capability', t.capability],
    ['Worker', t.workerId ?? '–'],
    ['Attempt', `${t.attempt}/${t.maxAttempts}`],
    ['Priority', String(t.priority)],
    ['Created', new Date(t.createdAt).toLocaleTimeString()],
    ['Duration', dur(t.durationMs)],
  ];
  if (t.progress?.percent != null) fields.push(['Progress', `${Math.round(t.progress.percent)}%${t.progress.message ? ` — ${t.progress.message}` : ''}`]);
  const dl = el('dl', { class: 'fields' });
  for (const [k, v] of fields) dl.append(el('dt', { text: k }), el('dd', { text: v }));
  const parts = [dl];
  if (t.error) parts.push(el('h3', { text: 'Error' }), el('p', { class: 'error', text: `${t.error.code}: ${t.error.message}` }));
  parts.push(el('h3', { text: 'Payload' }), el('pre', { text: t.payload ?? '(none)' }));
  if (t.output !== undefined) parts.push(el('h3', { text: 'Result' }), el('pre', { text: t.output }));
  parts.push(el('h3', { text: `Progress log (${t.progressLog.length})` }));
  parts.push(
    t.progressLog.length
      ? el(
          'ol',
          { class: 'log' },
          ...t.progressLog.map((p) =>
            el(
              'li',
              {},
              el('span', { class: 'muted', text: `${new Date(p.t).toLocaleTimeString()} #${p.attempt} ` }),
              [p.percent != null ? `${Math.round(p.percent)}%` : '', p.message ?? '', p.log ?? ''].filter(Boolean).join(' — '),
            ),
          ),
        )
      : el('p', { class: 'muted', text: 'no progress reported' }),
  );
  if (t.artifacts.length) {
    parts.push(el('h3', { text: 'Artifacts' }));
    const list = el('ul', { class: 'artifacts' });
    for (const a of t.artifacts) {
      const href = withToken(a.url);
      const item = el('li', {}, el('a', { href, target: '_blank', rel: 'noopener', text: `${a.name} (${a.contentType}, ${(a.size / 1024).toFixed(1)} KB)` }));
      if (a.contentType.startsWith('image/')) item.append(el('img', { src: href, alt: `artifact ${a.name}`, loading: 'lazy' }));
      list.append(item);
    }
    parts.push(list);
  }
  if (t.attempts.length > 1) {
    parts.push(el('h3', { text: 'Attempts' }));
    parts.push(
      el('ol', {}, ...t.attempts.map((a) => el('li', { text: `${a.workerId}: ${a.outcome ?? 'running'}${a.error ? ` — ${a.error.code}: ${a.error.message}` : ''}` }))),
    );
  }
  const buttons = el('div', { class: 'buttons' });
  if (!FINAL.has(t.state)) buttons.append(el('button', { type: 'button', text: 'Cancel task', onclick: () => cancelTask(t.id).then(() => openDetail(t.id)) }));
  if (RETRYABLE.has(t.state)) buttons.append(el('button', { type: 'button', text: 'Retry task', onclick: () => retryTask(t.id).then(() => openDetail(t.id)) }));
  parts.push(buttons);
  body.replaceChildren(...parts);
}

// --- the live socket ---
function setConn(s, text) {
  const c = $('#conn');
  c.dataset.state = s;
  c.textContent = text;
}

function apply(snapshot) {
  state.snapshot = snapshot;
  const last = state.history[state.history.length - 1];
  if (!last || last.t < snapshot.point.t) state.history.push(snapshot.point);
  if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
  $('#manager-id').textContent = snapshot.managerId;
  renderAlerts(snapshot.alerts);
  renderScaling(snapshot.scaling);
  renderBoard(snapshot);
  renderTypeFilter(snapshot.types);
  renderCharts();
}

function sendFilter() {
  const f = {};
  if (state.filter.state) f.state = state.filter.state;
  if (state.filter.type) f.type = state.filter.type;
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: 'filter', ...f }));
}

async function connect() {
  setConn('connecting', 'connecting…');
  try {
    const session = await api('/dashboard/api/session');
    state.access = session.access;
    $('#access').textContent = session.access === 'read' ? 'read-only token: actions will be refused' : session.access === 'write' ? 'operator token' : '';
  } catch (err) {
    if (err.status === 401) {
      setConn('unauthorized', 'token needed');
      notice(`${err.message}. Enter a token above.`);
      $('#token').focus();
      return;
    }
    return reconnectLater();
  }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${withToken('/dashboard/live')}`);
  state.ws = ws;
  ws.onopen = () => {
    state.retryMs = 500;
    setConn('live', 'live');
    sendFilter();
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'init') {
      state.history = msg.history.slice(-HISTORY);
      apply(msg.snapshot);
      state.tasks = msg.tasks;
      renderTasks();
    } else if (msg.type === 'tick') {
      apply(msg.snapshot);
      state.tasks = msg.tasks;
      renderTasks();
    } else if (msg.type === 'tasks') {
      state.tasks = msg.tasks;
      renderTasks();
    } else if (msg.type === 'error') {
      notice(msg.error.message);
    }
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = undefined;
    reconnectLater();
  };
}

function reconnectLater() {
  setConn('down', `disconnected — retrying in ${Math.round(state.retryMs / 1000)} s`);
  setTimeout(connect, state.retryMs);
  state.retryMs = Math.min(5000, state.retryMs * 2);
}

$('#token').value = state.token;
$('#token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('#token').value.trim();
  sessionStorage.setItem('fleet.token', state.token);
  $('#notice').hidden = true;
  const old = state.ws;
  state.ws = undefined;
  old?.close();
  void connect();
});
$('#task-filter').addEventListener('change', () => {
  state.filter.state = $('#filter-state').value;
  state.filter.type = $('#filter-type').value;
  sendFilter();
});
$('#detail').addEventListener('click', (ev) => {
  if (ev.target === ev.currentTarget) ev.currentTarget.close();
});

void connect();
