// ui.test.mjs — the web UI in a real browser (Debian's chromium, driven by playwright-core):
// a sidetrack-server on a scratch store, filled through MLflow's REST API, then the pages a
// user walks through: experiments, the runs table (filter, bad filter, sort, pick), a run
// (charts, system metrics, artifacts shown inline), the compare view, and a live run that
// refreshes by itself. Screenshots go to $SIDETRACK_BUILD_DIR/tests/web/ (paths printed).
//
// Run by run.sh (which skips with 77 when node or chromium is missing); alone:
//   SIDETRACK_BUILD_DIR=build node tests/web/ui.test.mjs
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BUILD = resolve(process.env.SIDETRACK_BUILD_DIR || 'build');
const SHOTS = process.env.SIDETRACK_WEB_SHOTS || join(BUILD, 'tests', 'web');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 20000;
// A 2x1 PNG (red, blue), so that the test can tell the browser decoded it.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAADUlEQVR4nGP4zwAE/wEHAAH/4iOeWQAAAABJRU5ErkJggg==', 'base64');

const { chromium } = await import('playwright-core');

let server, base, browser, page, scratch;
const runs = {};

async function call(path, body, method) {
  const r = await fetch(base + path, {
    method: method || (body === undefined ? 'GET' : 'POST'),
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await r.text();
  assert.ok(r.ok, `${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : {};
}

function startServer() {
  scratch = mkdtempSync(join(tmpdir(), 'sidetrack-web-'));
  server = spawn(join(BUILD, 'server', 'sidetrack-server'),
    ['--data', join(scratch, 'data'), '--zmq', 'off', '--http', '127.0.0.1:0'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((ok, fail) => {
    let log = '';
    server.stderr.on('data', (d) => {
      log += d;
      const m = /\(port (\d+);/.exec(log);
      if (m && !base) { base = `http://127.0.0.1:${m[1]}`; ok(); }
    });
    server.on('exit', (code) => fail(new Error(`sidetrack-server exited (${code}): ${log}`)));
  });
}

async function makeRun(exp, name, lr, finalLoss, opts = {}) {
  const r = (await call('/api/2.0/mlflow/runs/create', { experiment_id: exp, run_name: name, start_time: Date.now() - 60000 })).run.info;
  const metrics = [];
  const t0 = Date.now() - 50000;
  for (let s = 0; s < 50; s++) {
    metrics.push({ key: 'loss', value: finalLoss + (49 - s) * 0.05, timestamp: t0 + s * 1000, step: s });
    metrics.push({ key: 'acc', value: 1 - finalLoss / 2 + s * 0.001, timestamp: t0 + s * 1000, step: s });
    if (opts.system) metrics.push({ key: 'system/cpu_percent', value: 40 + (s % 7), timestamp: t0 + s * 1000, step: s });
  }
  await call('/api/2.0/mlflow/runs/log-batch', {
    run_id: r.run_id, metrics,
    params: [{ key: 'lr', value: String(lr) }, { key: 'batch', value: '32' }],
    tags: [{ key: 'team', value: 'vision' }],
  });
  if (!opts.running) await call('/api/2.0/mlflow/runs/update', { run_id: r.run_id, status: 'FINISHED', end_time: Date.now() });
  runs[name] = r.run_id;
  return r;
}

async function shot(name) {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

// The page for the current hash is drawn (a click or Enter changes the hash at once; the page
// says which hash it last finished drawing).
async function ready() {
  await page.waitForFunction(() => document.body.dataset.state !== 'loading' &&
    document.body.dataset.rendered === (location.hash || '#/'), null, { timeout: TIMEOUT });
}

async function open(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await ready();
}

before(async () => {
  await startServer();
  const exp = (await call('/api/2.0/mlflow/experiments/create', { name: 'ui-demo' })).experiment_id;
  runs.exp = exp;
  const a = await makeRun(exp, 'r-alpha', 0.1, 0.30, { system: true });
  await makeRun(exp, 'r-beta', 0.01, 0.10);
  await makeRun(exp, 'r-gamma', 0.001, 0.20, { running: true });
  await call(`/api/2.0/mlflow-artifacts/artifacts/${exp}/${a.run_id}/artifacts/plots/tiny.png`, PNG, 'PUT');
  await call(`/api/2.0/mlflow-artifacts/artifacts/${exp}/${a.run_id}/artifacts/notes.txt`, 'trained on the small set\n', 'PUT');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(base + '/');
  await ready();
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGTERM');
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const runNames = () => page.$$eval('#runs tr[data-run] td:nth-child(2)', (tds) => tds.map((t) => t.textContent));

test('the experiments page lists the experiment and links to its runs', async () => {
  const names = await page.$$eval('#experiments a', (as) => as.map((a) => a.textContent));
  assert.ok(names.includes('ui-demo'), names.join());
  await page.click('#experiments a:text("ui-demo")');
  await ready();
  await page.waitForSelector('#runs');
  assert.deepEqual((await runNames()).sort(), ['r-alpha', 'r-beta', 'r-gamma']);
  const heads = await page.$$eval('#runs th', (ths) => ths.map((t) => t.textContent));
  for (const h of ['Name', 'Status', 'Start', 'Duration', 'batch', 'lr', 'acc', 'loss', 'system/cpu_percent'])
    assert.ok(heads.includes(h), `column ${h} in ${heads.join()}`);
  const alphaLoss = await page.$eval(`#runs tr[data-run="${runs['r-alpha']}"]`, (tr) => tr.textContent);
  assert.match(alphaLoss, /0\.3/); // the latest loss, not the first
});

test('a filter in MLflow search language narrows the runs', async () => {
  await open(`#/experiments/${runs.exp}`);
  await page.fill('#filter', "params.lr = '0.01'");
  await page.press('#filter', 'Enter');
  await ready();
  assert.deepEqual(await runNames(), ['r-beta']);
  await page.fill('#filter', 'metrics.loss < 0.25 and attributes.status = "FINISHED"');
  await page.press('#filter', 'Enter');
  await ready();
  assert.deepEqual(await runNames(), ['r-beta']);
});

test('a bad filter shows the server\'s error', async () => {
  await page.fill('#filter', 'metrics.loss >> 1');
  await page.press('#filter', 'Enter');
  await ready();
  const msg = await page.textContent('#filter-error');
  assert.match(msg, /invalid filter/i);
  assert.equal(await page.$('#runs'), null);
});

test('clicking a column header sorts on the server, and again reverses', async () => {
  await open(`#/experiments/${runs.exp}`);
  await page.click('#runs th[data-order="metrics.loss"]');
  await ready();
  assert.match(page.url(), /order=metrics.loss/);
  assert.deepEqual(await runNames(), ['r-alpha', 'r-gamma', 'r-beta']); // DESC first
  await page.click('#runs th[data-order="metrics.loss"]');
  await ready();
  assert.deepEqual(await runNames(), ['r-beta', 'r-gamma', 'r-alpha']);
  await page.click('#runs th[data-order="attributes.run_name"]');
  await ready();
  assert.deepEqual(await runNames(), ['r-gamma', 'r-beta', 'r-alpha']);
  await shot('ui-runs.png');
});

test('a run page draws one chart per metric, system metrics apart, and shows artifacts', async () => {
  await page.click(`#runs a[href="#/runs/${runs['r-alpha']}"]`);
  await ready();
  await page.waitForSelector('#charts-metrics .chart[data-key="loss"] canvas');
  const points = await page.evaluate(() => window.sidetrack.charts.get('loss').chart.data.datasets[0].data.length);
  assert.equal(points, 50);
  // The charts read sidetrack's downsampled view when the server has it (else get-history).
  const hasView = (await fetch(`${base}/api/sidetrack/v1/metrics/view?run_id=${runs['r-alpha']}&key=loss`)).status !== 404;
  assert.equal(await page.evaluate(() => window.sidetrack.viewMissing), !hasView);
  const lastLoss = await page.evaluate(() => window.sidetrack.charts.get('loss').chart.data.datasets[0].data.at(-1));
  assert.deepEqual(lastLoss, { x: 49, y: 0.3 });
  assert.ok(await page.$('#charts-system .chart[data-key="system/cpu_percent"]'));
  assert.equal(await page.$('#charts-metrics .chart[data-key="system/cpu_percent"]'), null);
  assert.match(await page.textContent('#params'), /lr\s*0\.1/);
  assert.match(await page.textContent('#tags'), /team\s*vision/);
  const img = await page.waitForSelector('#artifacts img.artifact');
  await page.waitForFunction((i) => i.complete && i.naturalWidth > 0, img, { timeout: TIMEOUT });
  assert.equal(await img.evaluate((i) => i.naturalWidth), 2);
  assert.match(await page.textContent('#artifacts pre.artifact'), /trained on the small set/);
  const href = await page.getAttribute('#artifacts [data-path="notes.txt"] a', 'href');
  const r = await fetch(new URL(href, base));
  assert.equal(await r.text(), 'trained on the small set\n');
  await shot('ui-run.png');
});

test('compare overlays the chosen runs per metric and lists the params that differ', async () => {
  await open(`#/experiments/${runs.exp}`);
  assert.ok(await page.isDisabled('#compare'));
  await page.check(`#runs input.pick[value="${runs['r-alpha']}"]`);
  await page.check(`#runs input.pick[value="${runs['r-beta']}"]`);
  await page.click('#compare');
  await ready();
  await page.waitForSelector('.chart[data-key="acc"] canvas');
  const labels = await page.evaluate(() => window.sidetrack.charts.get('loss').chart.data.datasets.map((d) => d.label));
  assert.deepEqual(labels.sort(), ['r-alpha', 'r-beta']);
  const diff = await page.$$eval('#param-diff tr.diff td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(diff, ['lr']); // batch is the same in both
  await shot('ui-compare.png');
});

test('a running run refreshes by itself', async () => {
  await open(`#/runs/${runs['r-gamma']}`);
  assert.equal(await page.isVisible('#live'), true);
  const before_ = await page.evaluate(() => window.sidetrack.charts.get('loss').chart.data.datasets[0].data.length);
  await call('/api/2.0/mlflow/runs/log-metric', { run_id: runs['r-gamma'], key: 'loss', value: 0.05, timestamp: Date.now(), step: 50 });
  await page.waitForFunction((n) => window.sidetrack.charts.get('loss').chart.data.datasets[0].data.length > n, before_, { timeout: TIMEOUT });
  await call('/api/2.0/mlflow/runs/update', { run_id: runs['r-gamma'], status: 'FINISHED', end_time: Date.now() });
  await page.waitForFunction(() => document.getElementById('live').hidden, null, { timeout: TIMEOUT });
});

// ---- the model registry's pages (web/models.js) --------------------------------------------

async function aliasVersion(name, alias) {
  const r = await call(`/api/2.0/mlflow/registered-models/alias?name=${name}&alias=${alias}`);
  return r.model_version.version;
}

test('the models pages: list, versions with their runs, alias moves and rollback with a confirmation, compare', async () => {
  // Two versions of "churn", from r-alpha and r-beta, with different files.
  for (const [run, body] of [['r-alpha', 'weights of alpha'], ['r-beta', 'weights of beta']])
    await call(`/api/2.0/mlflow-artifacts/artifacts/${runs.exp}/${runs[run]}/artifacts/model/weights.bin`, body, 'PUT');
  await call('/api/2.0/mlflow/registered-models/create', { name: 'churn', description: 'who leaves' });
  for (const run of ['r-alpha', 'r-beta'])
    await call('/api/2.0/mlflow/model-versions/create', { name: 'churn', source: `runs:/${runs[run]}/model`, run_id: runs[run] });
  await call('/api/2.0/mlflow/registered-models/alias', { name: 'churn', alias: 'champion', version: '1' });

  await open('#/models');
  const names = await page.$$eval('#models a', (as) => as.map((a) => a.textContent));
  assert.deepEqual(names, ['churn']);
  await page.click('#models a:text("churn")');
  await ready();
  assert.match(await page.textContent('#aliases tr[data-alias="champion"] .alias-version'), /v1/);
  const lineage = await page.$$eval('#versions a.lineage', (as) => as.map((a) => a.textContent));
  assert.deepEqual(lineage, ['r-beta', 'r-alpha']); // newest version first, named by its run
  const digests = await page.$$eval('#versions tr[data-version] td[title]', (tds) => tds.map((t) => t.title));
  assert.equal(digests.length, 2);
  assert.ok(digests.every((d) => /^[0-9a-f]{64}$/.test(d)) && digests[0] !== digests[1], digests.join());
  await shot('ui-model.png');

  // Move champion to v2: nothing happens before the confirmation; Cancel changes nothing.
  await page.selectOption('select.alias-target[data-alias="champion"]', '2');
  await page.click('button.alias-move[data-alias="champion"]');
  await page.waitForSelector('#alias-confirm .confirm');
  assert.match(await page.textContent('#alias-confirm'), /Move @champion of churn from v1 to v2\?/);
  assert.equal(await aliasVersion('churn', 'champion'), '1');
  await page.click('#confirm-no');
  assert.equal(await aliasVersion('churn', 'champion'), '1');
  await page.selectOption('select.alias-target[data-alias="champion"]', '2');
  await page.click('button.alias-move[data-alias="champion"]');
  await page.click('#confirm-yes');
  await page.waitForFunction(() => /v2/.test(document.querySelector('#aliases tr[data-alias="champion"] .alias-version')?.textContent || ''),
    null, { timeout: TIMEOUT });
  await ready();
  assert.equal(await aliasVersion('churn', 'champion'), '2');

  // Roll back: to v1 again, recorded in the history.
  await page.click('button.alias-rollback[data-alias="champion"]');
  await page.click('#confirm-yes');
  await page.waitForFunction(() => /v1/.test(document.querySelector('#aliases tr[data-alias="champion"] .alias-version')?.textContent || ''),
    null, { timeout: TIMEOUT });
  await ready();
  assert.equal(await aliasVersion('churn', 'champion'), '1');
  const history = await page.textContent('#history');
  assert.match(history, /alias_rollback/);
  assert.match(history, /@champion: v2 → v1/);

  // Compare v1 and v2: lr differs, the final losses side by side, the files differ.
  assert.ok(await page.isDisabled('#compare-versions'));
  await page.check('input.pick-version[value="1"]');
  await page.check('input.pick-version[value="2"]');
  await page.click('#compare-versions');
  await ready();
  const diff = await page.$$eval('#version-param-diff tr.diff td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(diff, ['lr']);
  const loss = await page.$eval('#version-metrics', (t) => [...t.querySelectorAll('tr')].find((r) => r.cells[0].textContent === 'loss').textContent);
  assert.match(loss, /0\.3.*0\.1.*-0\.2/);
  assert.match(await page.textContent('#digest-verdict'), /files differ/);
  await shot('ui-model-compare.png');

  // Lineage the other way: the run page names the versions made from it.
  await open(`#/runs/${runs['r-beta']}`);
  assert.match(await page.textContent('#run-models'), /churn v2/);
});
