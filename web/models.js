// models.js — the model registry's pages of the web UI (loaded before app.js, whose helpers
// el, api, qs, fmtTime, fmtNum, kv, crumbs, runName and drawMetricGroups it uses at run time).
//
// Pages:
//   #/models?filter=TEXT             registered models (name contains TEXT)
//   #/models/NAME                    a model: aliases (move, roll back, with a confirmation),
//                                    versions with their runs (lineage), its audit history
//   #/models/NAME/compare?a=V1&b=V2  two versions: what made them differ (params), how they
//                                    score (final metrics), whether their files are the same
//
// It reads MLflow's model-registry REST API, plus sidetrack's extensions for what MLflow
// lacks: the content digest of a version's files, the audit history and rollback.
'use strict';

const MODELS_EXT = '/api/sidetrack/v1/models/';

const modelHref = (name) => `#/models/${encodeURIComponent(name)}`;
const versionDigest = (v) => v.sidetrack_digest || '';
const shortDigest = (d) => (d ? d.slice(0, 12) : '-');

function aliasChips(aliases) {
  return (aliases || []).map((a) => el('span', { class: 'alias' }, `@${a.alias || a}`));
}

// Every version of a model, newest first (model-versions/search pages through them).
async function modelVersions(name) {
  const out = [];
  let token = '';
  do {
    const q = { filter: `name='${name.replace(/'/g, "\\'")}'`, max_results: 1000 };
    if (token) q.page_token = token;
    const j = await api(`model-versions/search?${qs(q)}`);
    out.push(...(j.model_versions || []));
    token = j.next_page_token || '';
  } while (token && out.length < 100000);
  return out.sort((a, b) => Number(b.version) - Number(a.version));
}

// A run's final value of each metric (runs/get gives the latest point of each).
const finalMetrics = (run) => Object.fromEntries((run.data.metrics || []).map((m) => [m.key, m.value]));

async function pageModels(main, params) {
  crumbs({ text: 'Experiments', href: '#/' }, { text: 'Models' });
  const filter = params.get('filter') || '';
  const q = { max_results: 1000 };
  if (filter) q.filter = `name ILIKE '%${filter.replace(/'/g, "\\'")}%'`;
  const j = await api(`registered-models/search?${qs(q)}`);
  const models = j.registered_models || [];
  const input = el('input', { type: 'text', id: 'model-filter', value: filter, placeholder: 'name contains…' });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') location.hash = `#/models?${qs({ filter: input.value.trim() })}`;
  });
  main.replaceChildren(
    el('h1', {}, 'Registered models'),
    el('div', { class: 'toolbar' }, input),
    models.length ? el('table', { id: 'models' },
      el('tr', {}, ['Name', 'Latest version', 'Aliases', 'Updated', 'Description'].map((h) => el('th', {}, h))),
      models.map((m) => el('tr', {},
        el('td', {}, el('a', { href: modelHref(m.name) }, m.name)),
        el('td', { class: 'num' }, (m.latest_versions || []).reduce((x, v) => Math.max(x, Number(v.version)), 0) || '-'),
        el('td', {}, aliasChips(m.aliases).map((c, i) => [i ? ' ' : '', c])),
        el('td', {}, fmtTime(m.last_updated_timestamp)),
        el('td', { class: 'muted' }, m.description || ''))))
      : el('p', { class: 'muted' }, filter ? 'No model matches.' : 'No registered models yet.'));
}

// An inline confirmation: the question, Confirm and Cancel. Resolves true or false.
function confirmBox(box, question) {
  return new Promise((resolve) => {
    const done = (v) => { box.replaceChildren(); resolve(v); };
    box.replaceChildren(el('div', { class: 'confirm', role: 'alertdialog' },
      el('span', {}, question), ' ',
      el('button', { id: 'confirm-yes', onclick: () => done(true) }, 'Confirm'), ' ',
      el('button', { id: 'confirm-no', onclick: () => done(false) }, 'Cancel')));
  });
}

function aliasRow(model, alias, version, versions, box) {
  const pick = el('select', { class: 'alias-target', 'data-alias': alias },
    versions.map((v) => el('option', { value: v.version, selected: String(v.version) === String(version) }, `v${v.version}`)));
  const act = async (question, call) => {
    if (!(await confirmBox(box, question))) return;
    try {
      await call();
      render(true);
    } catch (e) {
      showError(box, e);
    }
  };
  const move = el('button', { class: 'alias-move', 'data-alias': alias, onclick: () => {
    const to = pick.value;
    if (String(to) === String(version)) return;
    act(`Move @${alias} of ${model} from v${version} to v${to}?`,
      () => api('registered-models/alias', { name: model, alias, version: String(to) }));
  } }, 'Move');
  const back = el('button', { class: 'alias-rollback', 'data-alias': alias, onclick: () =>
    act(`Roll @${alias} of ${model} back to the version it named before v${version}?`,
      () => api(`${MODELS_EXT}alias/rollback`, { name: model, alias })) }, 'Roll back');
  return el('tr', { 'data-alias': alias },
    el('td', {}, el('span', { class: 'alias' }, `@${alias}`)),
    el('td', { class: 'num alias-version' }, `v${version}`),
    el('td', {}, pick, ' ', move, ' ', back));
}

async function historyTable(model) {
  let j;
  try {
    j = await api(`${MODELS_EXT}history?${qs({ name: model, max_results: 50 })}`);
  } catch (e) {
    return el('p', { class: 'muted' }, `No history: ${e.message}`);
  }
  const events = j.events || [];
  if (!events.length) return el('p', { class: 'muted' }, 'No changes recorded.');
  const what = (e) => {
    const v = (n) => (Number(n) ? `v${n}` : 'none');
    if (/^alias/.test(e.change)) return `@${e.key}: ${v(e.from_version)} → ${v(e.to_version)}`;
    if (e.version && Number(e.version)) return `v${e.version}${e.key ? ` ${e.key}` : ''}${e.after ? `: ${e.after}` : ''}`;
    return e.after || e.key || '';
  };
  return el('table', { id: 'history' },
    el('tr', {}, ['When', 'Change', 'What', 'Who'].map((h) => el('th', {}, h))),
    events.map((e) => el('tr', {}, el('td', {}, fmtTime(e.timestamp)), el('td', {}, e.change),
      el('td', {}, what(e)), el('td', {}, e.actor || '-'))));
}

async function pageModel(main, name) {
  crumbs({ text: 'Models', href: '#/models' }, { text: name });
  const m = (await api(`registered-models/get?${qs({ name })}`)).registered_model;
  const versions = await modelVersions(name);
  const runs = new Map();
  await Promise.all([...new Set(versions.map((v) => v.run_id).filter(Boolean))].map(async (id) => {
    try { runs.set(id, (await api(`runs/get?${qs({ run_id: id })}`)).run); } catch (e) { /* gone */ }
  }));
  const aliases = (m.aliases || []).slice().sort((a, b) => a.alias.localeCompare(b.alias));
  const box = el('div', { id: 'alias-confirm' });
  const compare = el('button', { id: 'compare-versions', disabled: true }, 'Compare');
  const picked = () => [...main.querySelectorAll('input.pick-version:checked')].map((c) => c.value);
  compare.addEventListener('click', () => {
    const [a, b] = picked().map(Number).sort((x, y) => x - y); // older on the left
    location.hash = `${modelHref(name)}/compare?${qs({ a, b })}`;
  });
  const onPick = () => { compare.disabled = picked().length !== 2; };
  main.replaceChildren(...[
    el('h1', {}, name),
    m.description ? el('p', {}, m.description) : null,
    (m.tags || []).length ? kvTable('model-tags', kv(m.tags)) : null,
    el('h2', {}, 'Aliases'),
    aliases.length ? el('table', { id: 'aliases' },
      el('tr', {}, el('th', {}, 'Alias'), el('th', {}, 'Version'), el('th', {}, 'Move to')),
      aliases.map((a) => aliasRow(name, a.alias, a.version, versions, box)))
      : el('p', { class: 'muted' }, 'No aliases.'),
    box,
    el('h2', {}, 'Versions'),
    el('div', { class: 'toolbar' }, compare, el('span', { class: 'muted' }, 'tick two versions to compare them')),
    el('div', { class: 'table-wrap' }, el('table', { id: 'versions' },
      el('tr', {}, ['', 'Version', 'Aliases', 'Stage', 'Status', 'Run', 'Digest', 'Created'].map((h) => el('th', {}, h))),
      versions.map((v) => {
        const run = runs.get(v.run_id);
        return el('tr', { 'data-version': v.version },
          el('td', {}, el('input', { type: 'checkbox', class: 'pick-version', value: v.version, onchange: onPick })),
          el('td', { class: 'num' }, `v${v.version}`),
          el('td', {}, aliasChips(v.aliases).map((c, i) => [i ? ' ' : '', c])),
          el('td', {}, v.current_stage || 'None'),
          el('td', { class: `status-${v.status}` }, v.status),
          el('td', {}, v.run_id ? el('a', { href: `#/runs/${v.run_id}`, class: 'lineage' }, run ? runName(run) : v.run_id.slice(0, 8)) : '-'),
          el('td', { title: versionDigest(v) }, el('code', {}, shortDigest(versionDigest(v)))),
          el('td', {}, fmtTime(v.creation_timestamp)));
      }))),
    el('h2', {}, 'History'),
    await historyTable(name)].filter(Boolean));
}

async function pageModelCompare(main, name, params) {
  const nums = [params.get('a'), params.get('b')];
  crumbs({ text: 'Models', href: '#/models' }, { text: name, href: modelHref(name) },
    { text: `v${nums[0]} vs v${nums[1]}` });
  const vs = await Promise.all(nums.map(async (version) =>
    (await api(`model-versions/get?${qs({ name, version })}`)).model_version));
  const rs = await Promise.all(vs.map(async (v) =>
    (v.run_id ? (await api(`runs/get?${qs({ run_id: v.run_id })}`)).run : null)));
  const head = el('tr', {}, el('th', {}, ''), vs.map((v) => el('th', {}, `v${v.version}`)));
  const ps = rs.map((r) => (r ? kv(r.data.params) : {}));
  const pkeys = [...new Set(ps.flatMap((p) => Object.keys(p)))].sort()
    .filter((k) => (ps[0][k] ?? '\u0000') !== (ps[1][k] ?? '\u0000'));
  const ms = rs.map((r) => (r ? finalMetrics(r) : {}));
  const mkeys = [...new Set(ms.flatMap((x) => Object.keys(x)))].filter((k) => !k.startsWith('system/')).sort();
  const same = versionDigest(vs[0]) && versionDigest(vs[0]) === versionDigest(vs[1]);
  main.replaceChildren(
    el('h1', {}, `${name}: v${vs[0].version} vs v${vs[1].version}`),
    el('table', { id: 'version-info' }, head,
      el('tr', {}, el('td', {}, 'Run'), rs.map((r, i) => el('td', {}, r ? el('a', { href: `#/runs/${r.info.run_id}` }, runName(r)) : vs[i].run_id || '-'))),
      el('tr', {}, el('td', {}, 'Source'), vs.map((v) => el('td', {}, el('code', {}, v.source)))),
      el('tr', {}, el('td', {}, 'Aliases'), vs.map((v) => el('td', {}, aliasChips(v.aliases)))),
      el('tr', { class: same ? '' : 'diff' }, el('td', {}, 'Digest'),
        vs.map((v) => el('td', { title: versionDigest(v) }, el('code', {}, shortDigest(versionDigest(v))))))),
    el('p', { id: 'digest-verdict', class: 'muted' }, same ? 'The two versions have the same files.' : 'The files differ.'),
    el('h2', {}, 'Parameters that differ'),
    pkeys.length ? el('table', { id: 'version-param-diff' }, head.cloneNode(true),
      pkeys.map((k) => el('tr', { class: 'diff' }, el('td', {}, k), ps.map((p) => el('td', {}, p[k] ?? '-')))))
      : el('p', { class: 'muted', id: 'version-param-diff' }, 'Same parameters.'),
    el('h2', {}, 'Final metrics'),
    mkeys.length ? el('table', { id: 'version-metrics' },
      el('tr', {}, el('th', {}, 'Metric'), vs.map((v) => el('th', {}, `v${v.version}`)), el('th', {}, 'Change')),
      mkeys.map((k) => {
        const [a, b] = ms.map((x) => x[k]);
        const d = typeof a === 'number' && typeof b === 'number' ? b - a : null;
        return el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, fmtNum(a)), el('td', { class: 'num' }, fmtNum(b)),
          el('td', { class: 'num' }, d === null ? '' : (d > 0 ? '+' : '') + fmtNum(d)));
      }))
      : el('p', { class: 'muted' }, 'No metrics.'),
    el('div', { id: 'metrics-box' }));
  const ids = rs.filter(Boolean).map((r) => r.info.run_id);
  if (ids.length) {
    const label = (id) => `v${vs[rs.findIndex((r) => r && r.info.run_id === id)].version}`;
    await drawMetricGroups(main.querySelector('#metrics-box'), ids, mkeys, label);
  }
}

// The versions made from a run (lineage, run -> model), for the run page; null when there are
// none or the server has no registry.
async function runModelVersions(runId) {
  let j;
  try {
    j = await api(`model-versions/search?${qs({ filter: `run_id='${runId}'`, max_results: 100 })}`);
  } catch (e) {
    return null;
  }
  const vs = j.model_versions || [];
  if (!vs.length) return null;
  return el('ul', { id: 'run-models' }, vs.map((v) => el('li', {},
    el('a', { href: modelHref(v.name) }, `${v.name} v${v.version}`), ' ', aliasChips(v.aliases))));
}
