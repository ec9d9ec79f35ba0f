// app.js — sidetrack's web UI: plain JavaScript, no build step, no framework.
//
// It reads MLflow's REST API (/ajax-api/2.0/mlflow/...) and sidetrack's downsampled metrics
// view (/api/sidetrack/v1/metrics/view; metrics/get-history when a server lacks it) and draws
// with Chart.js (Debian's libjs-chart.js, served by sidetrack-server as /static/vendor/).
//
// Pages (hash routing, so that the server serves one index.html):
//   #/                            experiments
//   #/experiments/ID?filter=F&order=KEY&dir=asc|desc   an experiment's runs
//   #/runs/RUN                    a run: info, params, tags, metric charts, artifacts
//   #/compare?runs=A,B,...        the chosen runs' curves overlaid, and the params that differ
//   #/models...                   the model registry (models.js)
//
// Pages with a RUNNING run refresh every few seconds. document.body.dataset.state is
// "loading", "ready" or "error", and dataset.rendered the hash shown (the browser tests wait
// on them).
'use strict';

const API = '/ajax-api/2.0/mlflow/';
const VIEW = '/api/sidetrack/v1/metrics/view';
const REFRESH_MS = 5000;
const POINTS = 1500;
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#ca8a04',
                '#db2777', '#4b5563', '#65a30d'];

const state = { timer: null, charts: new Map(), route: 0, viewMissing: false };
window.sidetrack = state; // for the browser tests and for curious users

// ---- small helpers ------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, body) {
  const opts = body === undefined ? {} :
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const r = await fetch(path.startsWith('/') ? path : API + path, opts);
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON: say the status below */ }
  if (!r.ok) {
    const err = new Error(j && j.message ? j.message : `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return j || {};
}

const qs = (o) => new URLSearchParams(o).toString();

function fmtTime(ms) {
  if (!ms) return '-';
  const d = new Date(Number(ms));
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
         `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fmtDuration(info) {
  if (!info.start_time) return '-';
  const end = info.end_time ? Number(info.end_time) : Date.now();
  let s = Math.max(0, Math.round((end - Number(info.start_time)) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function fmtNum(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v; // "NaN", "Infinity" as the API spells them
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3 ? v.toExponential(4) : String(Number(v.toPrecision(5)));
}

// MLflow's search language quotes an identifier with backticks when it is not a plain word.
const ident = (kind, key) => /^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? `${kind}.${key}` : `${kind}.\`${key}\``;

const runName = (run) => run.info.run_name || run.info.run_id.slice(0, 8);
const kv = (list) => Object.fromEntries((list || []).map((x) => [x.key, x.value]));

function crumbs(...parts) {
  const c = document.getElementById('crumbs');
  c.replaceChildren(...parts.map((p) => (p.href ? el('a', { href: p.href }, p.text) : el('span', {}, p.text))));
}

function setLive(on) { document.getElementById('live').hidden = !on; }

function showError(where, e) {
  where.replaceChildren(el('p', { class: 'error', role: 'alert' }, e.message || String(e)));
}

// ---- metric series: the downsampled view, or the full history from MLflow's API -------------

async function fetchSeries(runIds, keys) {
  if (!state.viewMissing) {
    const p = new URLSearchParams();
    runIds.forEach((r) => p.append('run_id', r));
    keys.forEach((k) => p.append('key', k));
    p.set('points', POINTS);
    try {
      return (await api(`${VIEW}?${p}`)).series || [];
    } catch (e) {
      if (e.status !== 404 || !/endpoint/i.test(e.message)) throw e;
      state.viewMissing = true; // an older server: read whole histories instead
    }
  }
  const out = [];
  for (const run_id of runIds) {
    for (const key of keys) {
      const steps = [], values = [], timestamps = [];
      let token = '';
      do {
        const q = { run_id, metric_key: key, max_results: 25000 };
        if (token) q.page_token = token;
        const j = await api(`metrics/get-history?${qs(q)}`);
        for (const m of j.metrics || []) {
          steps.push(Number(m.step || 0));
          timestamps.push(Number(m.timestamp || 0));
          values.push(typeof m.value === 'number' ? m.value : null);
        }
        token = j.next_page_token || '';
      } while (token && steps.length < 200000);
      out.push({ run_id, key, count: steps.length, downsampled: false, steps, timestamps, values });
    }
  }
  return out;
}

function toPoints(s) {
  return s.steps.map((x, i) => ({ x: Number(x), y: s.values[i] === null ? null : Number(s.values[i]) }));
}

// One chart per key; datasets = one per run. Updating in place keeps the zoom and avoids
// flicker when a live run refreshes.
function drawChart(container, key, datasets, note) {
  let entry = state.charts.get(key);
  if (entry && entry.canvas.isConnected) {
    entry.chart.data.datasets = datasets;
    entry.chart.update('none');
    entry.note.textContent = note;
    return;
  }
  const canvas = el('canvas', { 'aria-label': `chart of ${key}` });
  const noteEl = el('div', { class: 'note' }, note);
  // Chart.js sizes a responsive chart from its parent: a box of its own, of fixed height.
  container.append(el('div', { class: 'chart', 'data-key': key }, el('h3', {}, key),
    el('div', { class: 'plot' }, canvas), noteEl));
  const chart = new Chart(canvas, {
    type: 'line',
    data: { datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, spanGaps: false,
      parsing: false, normalized: true,
      interaction: { mode: 'nearest', intersect: false },
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
      scales: { x: { type: 'linear', title: { display: true, text: 'step' } } },
      plugins: { legend: { display: datasets.length > 1 } },
    },
  });
  state.charts.set(key, { chart, canvas, note: noteEl });
}

function chartDatasets(series, runIds, label) {
  return runIds.map((id, i) => {
    const s = series.find((x) => x.run_id === id);
    return {
      label: label(id), data: s ? toPoints(s) : [],
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
    };
  });
}

function seriesNote(list) {
  const n = list.reduce((a, s) => a + (s.count || 0), 0);
  const d = list.some((s) => s.downsampled);
  return `${n} points${d ? ' (downsampled for drawing)' : ''}`;
}

async function drawMetricGroups(where, runIds, keys, label) {
  const byKey = new Map();
  for (const s of await fetchSeries(runIds, keys)) {
    if (!byKey.has(s.key)) byKey.set(s.key, []);
    byKey.get(s.key).push(s);
  }
  const user = keys.filter((k) => !k.startsWith('system/'));
  const sys = keys.filter((k) => k.startsWith('system/'));
  for (const [title, group, id] of [['Metrics', user, 'charts-metrics'], ['System metrics', sys, 'charts-system']]) {
    if (!group.length) continue;
    let box = where.querySelector(`#${id}`);
    if (!box) where.append(el('h2', {}, title), (box = el('div', { class: 'charts', id })));
    for (const k of group) {
      const list = byKey.get(k) || [];
      drawChart(box, k, chartDatasets(list, runIds, label), seriesNote(list));
    }
  }
}

// ---- pages --------------------------------------------------------------------------------

async function pageExperiments(main) {
  crumbs({ text: 'Experiments' });
  const j = await api('experiments/search', { max_results: 1000, view_type: 'ACTIVE_ONLY' });
  const exps = (j.experiments || []).sort((a, b) => a.name.localeCompare(b.name));
  main.replaceChildren(
    el('h1', {}, 'Experiments'),
    exps.length ? el('table', { id: 'experiments' },
      el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'ID'), el('th', {}, 'Created')),
      exps.map((x) => el('tr', {},
        el('td', {}, el('a', { href: `#/experiments/${encodeURIComponent(x.experiment_id)}` }, x.name)),
        el('td', {}, x.experiment_id), el('td', {}, fmtTime(x.creation_time)))))
      : el('p', { class: 'muted' }, 'No experiments yet.'));
}

async function pageRuns(main, expId, params, first) {
  const filter = params.get('filter') || '';
  const order = params.get('order') || '';
  const dir = params.get('dir') === 'asc' ? 'ASC' : 'DESC';
  const exp = (await api(`experiments/get?${qs({ experiment_id: expId })}`)).experiment || {};
  crumbs({ text: 'Experiments', href: '#/' }, { text: exp.name || expId });

  const go = (p) => { location.hash = `#/experiments/${encodeURIComponent(expId)}?${p}`; };
  const input = el('input', { type: 'text', id: 'filter', value: filter, spellcheck: 'false',
    placeholder: "MLflow filter, e.g. metrics.acc > 0.9 and params.lr = '0.01'" });
  const search = () => { const p = new URLSearchParams(params); p.set('filter', input.value.trim()); go(p); };
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter') search(); });
  const compare = el('button', { id: 'compare', disabled: true }, 'Compare');
  const errBox = el('div', { id: 'filter-error' });
  // A live refresh keeps the user's half-typed filter and ticked boxes.
  const picked = new Set([...main.querySelectorAll('input.pick:checked')].map((c) => c.value));
  let tableBox = main.querySelector('.table-wrap');
  if (first || !tableBox) {
    tableBox = el('div', { class: 'table-wrap' }, el('p', { class: 'muted' }, 'Loading runs…'));
    main.replaceChildren(el('h1', {}, exp.name || `Experiment ${expId}`),
      el('div', { class: 'toolbar' }, input, el('button', { id: 'search', onclick: search }, 'Search'), compare),
      errBox, tableBox);
  }
  const body = { experiment_ids: [expId], max_results: 1000, filter };
  if (order) body.order_by = [`${order} ${dir}`];
  let runs;
  try {
    runs = (await api('runs/search', body)).runs || [];
  } catch (e) {
    if (e.status !== 400) throw e;
    showError(main.querySelector('#filter-error'), e);
    tableBox.replaceChildren();
    return false;
  }
  const paramKeys = [...new Set(runs.flatMap((r) => (r.data.params || []).map((p) => p.key)))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort();

  const header = (text, key) => {
    if (!key) return el('th', {}, text);
    const sorted = key === order;
    return el('th', {
      class: `sortable${sorted ? (dir === 'ASC' ? ' sorted-asc' : ' sorted-desc') : ''}`,
      'data-order': key, title: `sort by ${key}`,
      onclick: () => {
        const p = new URLSearchParams(params);
        p.set('order', key);
        p.set('dir', sorted && dir === 'DESC' ? 'asc' : 'desc');
        go(p);
      },
    }, text);
  };
  const updateCompare = () => {
    const n = tableBox.querySelectorAll('input.pick:checked').length;
    const b = main.querySelector('#compare');
    b.disabled = n < 2;
    b.textContent = n >= 2 ? `Compare ${n}` : 'Compare';
  };
  main.querySelector('#compare').onclick = () => {
    const ids = [...tableBox.querySelectorAll('input.pick:checked')].map((c) => c.value);
    location.hash = `#/compare?${qs({ runs: ids.join(',') })}`;
  };
  tableBox.replaceChildren(runs.length ? el('table', { id: 'runs' },
    el('tr', {}, el('th', {}, ''), header('Name', 'attributes.run_name'), header('Status', 'attributes.status'),
      header('Start', 'attributes.start_time'), header('Duration'),
      paramKeys.map((k) => header(k, ident('params', k))),
      metricKeys.map((k) => header(k, ident('metrics', k)))),
    runs.map((r) => {
      const p = kv(r.data.params), m = kv(r.data.metrics);
      return el('tr', { 'data-run': r.info.run_id },
        el('td', {}, el('input', { type: 'checkbox', class: 'pick', value: r.info.run_id,
          checked: picked.has(r.info.run_id), onchange: updateCompare, 'aria-label': `pick ${runName(r)}` })),
        el('td', {}, el('a', { href: `#/runs/${r.info.run_id}` }, runName(r))),
        el('td', { class: `status-${r.info.status}` }, r.info.status),
        el('td', {}, fmtTime(r.info.start_time)), el('td', {}, fmtDuration(r.info)),
        paramKeys.map((k) => el('td', {}, p[k] ?? '')),
        metricKeys.map((k) => el('td', { class: 'num' }, fmtNum(m[k]))));
    })) : el('p', { class: 'muted' }, filter ? 'No run matches the filter.' : 'No runs yet.'));
  updateCompare();
  return runs.some((r) => r.info.status === 'RUNNING');
}

function kvTable(id, obj, sorted = true) {
  const keys = sorted ? Object.keys(obj).sort() : Object.keys(obj);
  if (!keys.length) return el('p', { class: 'muted', id }, 'None.');
  return el('table', { class: 'kv', id }, keys.map((k) => el('tr', {}, el('td', {}, k), el('td', {}, obj[k]))));
}

const TEXT_EXT = /\.(txt|log|md|json|ya?ml|csv|tsv|py|cfg|ini|toml|sh|xml|html?)$/i;
const IMAGE_EXT = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const INLINE_MAX = 256 * 1024;

async function listArtifacts(runId, path, depth) {
  const q = { run_id: runId };
  if (path) q.path = path;
  const files = (await api(`artifacts/list?${qs(q)}`)).files || [];
  const out = [];
  for (const f of files) {
    if (f.is_dir && depth < 4) out.push(...await listArtifacts(runId, f.path, depth + 1));
    else if (!f.is_dir) out.push(f);
  }
  return out;
}

async function renderArtifacts(box, runId) {
  const files = await listArtifacts(runId, '', 0);
  if (!files.length) { box.replaceChildren(el('p', { class: 'muted' }, 'None.')); return; }
  box.replaceChildren();
  for (const f of files) {
    const url = `/get-artifact?${qs({ path: f.path, run_uuid: runId })}`;
    const item = el('div', { class: 'artifact-item', 'data-path': f.path },
      el('a', { href: url, download: f.path.split('/').pop() }, f.path),
      el('span', { class: 'muted' }, ` ${f.file_size ?? '?'} bytes`));
    box.append(item);
    const size = Number(f.file_size || 0);
    if (IMAGE_EXT.test(f.path) && size <= 16 * INLINE_MAX) {
      item.append(el('div', {}, el('img', { class: 'artifact', src: url, alt: f.path })));
    } else if (TEXT_EXT.test(f.path) && size <= INLINE_MAX) {
      const r = await fetch(url);
      if (r.ok) item.append(el('pre', { class: 'artifact' }, await r.text()));
    }
  }
}

async function pageRun(main, runId, params, first) {
  const run = (await api(`runs/get?${qs({ run_id: runId })}`)).run;
  const info = run.info;
  const exp = (await api(`experiments/get?${qs({ experiment_id: info.experiment_id })}`)).experiment || {};
  crumbs({ text: 'Experiments', href: '#/' },
    { text: exp.name || info.experiment_id, href: `#/experiments/${encodeURIComponent(info.experiment_id)}` },
    { text: runName(run) });
  const tags = kv(run.data.tags);
  const infoRows = {
    'Run ID': info.run_id, Status: info.status, Start: fmtTime(info.start_time),
    End: fmtTime(info.end_time), Duration: fmtDuration(info), 'Artifact URI': info.artifact_uri,
  };
  const metricKeys = [...new Set((run.data.metrics || []).map((m) => m.key))].sort();
  if (first) {
    main.replaceChildren(el('h1', {}, runName(run)),
      el('div', { id: 'info-box' }), el('h2', {}, 'Parameters'), el('div', { id: 'params-box' }),
      el('h2', {}, 'Tags'), el('div', { id: 'tags-box' }),
      el('div', { id: 'models-box' }),
      el('div', { id: 'metrics-box' }),
      el('h2', {}, 'Artifacts'), el('div', { id: 'artifacts' }, el('p', { class: 'muted' }, 'Loading…')));
  }
  main.querySelector('#info-box').replaceChildren(kvTable('info', infoRows, false));
  main.querySelector('#params-box').replaceChildren(kvTable('params', kv(run.data.params)));
  main.querySelector('#tags-box').replaceChildren(kvTable('tags',
    Object.fromEntries(Object.entries(tags).filter(([k]) => !k.startsWith('mlflow.runName')))));
  if (first) { // lineage: the registered versions made from this run
    const made = await runModelVersions(runId);
    if (made) main.querySelector('#models-box').replaceChildren(el('h2', {}, 'Registered as'), made);
  }
  const mbox = main.querySelector('#metrics-box');
  if (!metricKeys.length && first) mbox.replaceChildren(el('h2', {}, 'Metrics'), el('p', { class: 'muted' }, 'None.'));
  await drawMetricGroups(mbox, [runId], metricKeys, () => runName(run));
  if (first || info.status === 'RUNNING') await renderArtifacts(main.querySelector('#artifacts'), runId);
  return info.status === 'RUNNING';
}

async function pageCompare(main, params, first) {
  const ids = (params.get('runs') || '').split(',').filter(Boolean);
  const runs = await Promise.all(ids.map(async (id) => (await api(`runs/get?${qs({ run_id: id })}`)).run));
  const expId = runs[0] ? runs[0].info.experiment_id : '';
  crumbs({ text: 'Experiments', href: '#/' },
    ...(expId ? [{ text: 'Runs', href: `#/experiments/${encodeURIComponent(expId)}` }] : []),
    { text: `Compare ${runs.length} runs` });
  const names = new Map(runs.map((r) => [r.info.run_id, runName(r)]));
  const params_ = runs.map((r) => kv(r.data.params));
  const allKeys = [...new Set(params_.flatMap((p) => Object.keys(p)))].sort();
  const differ = allKeys.filter((k) => new Set(params_.map((p) => p[k] ?? '\u0000')).size > 1);
  const metricKeys = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort();
  if (first) {
    main.replaceChildren(el('h1', {}, `Comparing ${runs.length} runs`),
      el('h2', {}, 'Parameters that differ'),
      differ.length ? el('table', { id: 'param-diff' },
        el('tr', {}, el('th', {}, 'Param'), runs.map((r) => el('th', {}, el('a', { href: `#/runs/${r.info.run_id}` }, runName(r))))),
        differ.map((k) => el('tr', { class: 'diff' }, el('td', {}, k), params_.map((p) => el('td', {}, p[k] ?? '-')))))
        : el('p', { class: 'muted', id: 'param-diff' }, 'The runs have the same parameters.'),
      el('div', { id: 'metrics-box' }));
  }
  await drawMetricGroups(main.querySelector('#metrics-box'), ids, metricKeys, (id) => names.get(id) || id);
  return runs.some((r) => r.info.status === 'RUNNING');
}

// ---- router -------------------------------------------------------------------------------

async function render(first) {
  const my = first ? ++state.route : state.route;
  clearTimeout(state.timer);
  if (first) {
    for (const { chart } of state.charts.values()) chart.destroy();
    state.charts.clear();
  }
  const main = document.getElementById('main');
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  document.body.dataset.state = 'loading';
  let live = false, failed = null;
  try {
    if (parts[0] === 'experiments' && parts[1]) live = await pageRuns(main, parts[1], params, first);
    else if (parts[0] === 'runs' && parts[1]) live = await pageRun(main, parts[1], params, first);
    else if (parts[0] === 'compare') live = await pageCompare(main, params, first);
    else if (parts[0] === 'models' && parts[1] && parts[2] === 'compare') await pageModelCompare(main, parts[1], params);
    else if (parts[0] === 'models' && parts[1]) await pageModel(main, parts[1]);
    else if (parts[0] === 'models') await pageModels(main, params);
    else await pageExperiments(main);
  } catch (e) {
    failed = e;
  }
  if (my !== state.route) return; // the user went elsewhere meanwhile: that render reports
  if (failed) showError(main, failed);
  // Which hash the page now shows: the tests wait for it, so that they never read the page
  // that was there before their click.
  document.body.dataset.rendered = location.hash || '#/';
  document.body.dataset.state = failed ? 'error' : 'ready';
  setLive(live);
  if (live) state.timer = setTimeout(() => render(false), REFRESH_MS);
}

window.addEventListener('hashchange', () => render(true));
render(true);
