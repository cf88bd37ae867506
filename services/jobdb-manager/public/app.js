// The Event Delivery page: plain browser JavaScript, no build step and no outside asset. It reads
// the admin API of the server that served it (the browser resends the Basic credentials it was
// asked for), draws one card per destination and refreshes itself.
'use strict';

const REFRESH_MS = 10_000;
const FAILURES_SHOWN = 10;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (selector, root = document) => root.querySelector(selector);

async function api(method, path) {
  const res = await fetch(path, { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${body.error ? body.error.message : ''}`);
  return body.data;
}

const number = (n) => n.toLocaleString('en-US');

function latencyText(l) {
  if (l.samples === 0) return '–';
  const one = (v) => (v === null ? '>30 s' : `≤${number(v)} ms`);
  return `${one(l.p50Ms)} / ${one(l.p95Ms)} / ${one(l.p99Ms)}`;
}

function codesText(codes, outcome) {
  const list = codes.filter((c) => c.outcome === outcome);
  if (list.length === 0) return '–';
  return list.map((c) => `${c.status === 0 ? 'no answer' : c.status} ×${number(c.count)}`).join(', ');
}

function bytesText(n) {
  if (n === null) return '?';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function ageText(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function setField(card, field, text) {
  $(`[data-field="${field}"]`, card).textContent = text;
}

/** Bars per minute: delivered up from the middle line, failed (discarded + expired) and retried down from it. */
function drawChart(svg, points) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = 560;
  const height = 160;
  const middle = height / 2;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const up = Math.max(1, ...points.map((p) => p.delivered));
  const down = Math.max(1, ...points.map((p) => p.discarded + p.expired + p.retrying));
  const step = width / points.length;
  const bar = (x, y, h, cls, title) => {
    if (h <= 0) return;
    const r = document.createElementNS(SVG_NS, 'rect');
    r.setAttribute('x', String(x));
    r.setAttribute('y', String(y));
    r.setAttribute('width', String(Math.max(1, step - 0.5)));
    r.setAttribute('height', String(Math.max(1, h)));
    r.setAttribute('class', cls);
    const t = document.createElementNS(SVG_NS, 'title');
    t.textContent = title;
    r.appendChild(t);
    svg.appendChild(r);
  };
  points.forEach((p, i) => {
    const x = i * step;
    const at = p.minute.slice(11, 16);
    bar(
      x,
      middle - (p.delivered / up) * (middle - 4),
      (p.delivered / up) * (middle - 4),
      'bar-delivered',
      `${at} delivered ${p.delivered}`,
    );
    const failed = p.discarded + p.expired;
    const hf = (failed / down) * (middle - 4);
    bar(x, middle, hf, 'bar-failed', `${at} failed ${failed}`);
    bar(x, middle + hf, (p.retrying / down) * (middle - 4), 'bar-retried', `${at} retried ${p.retrying}`);
  });
  const line = document.createElementNS(SVG_NS, 'line');
  line.setAttribute('x1', '0');
  line.setAttribute('x2', String(width));
  line.setAttribute('y1', String(middle));
  line.setAttribute('y2', String(middle));
  line.setAttribute('stroke', '#8c959f');
  svg.appendChild(line);
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function renderFailures(tbody, failures) {
  tbody.replaceChildren();
  if (failures.length === 0) {
    const row = tbody.insertRow();
    cell(row, 'none in the last day').colSpan = 5;
    return;
  }
  for (const f of failures) {
    const row = tbody.insertRow();
    row.dataset.status = String(f.status ?? 0);
    cell(row, new Date(f.at).toLocaleString());
    cell(row, f.sourceId);
    cell(row, f.outcome ?? '?');
    cell(row, f.status === null ? 'no answer' : String(f.status));
    cell(row, [f.error, f.responseExcerpt].filter(Boolean).join(' — '));
  }
}

function cardFor(destinationId) {
  const container = $('#destinations');
  let card = container.querySelector(`section[data-destination="${CSS.escape(destinationId)}"]`);
  if (card) return card;
  card = $('#destination-template').content.firstElementChild.cloneNode(true);
  card.dataset.destination = destinationId;
  $('.name', card).textContent = destinationId;
  $('.toggle', card).addEventListener('click', async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const action = card.dataset.paused === 'true' ? 'resume' : 'pause';
      const data = await api('POST', `/v1/destinations/${encodeURIComponent(destinationId)}/${action}`);
      controlChangedAt = performance.now();
      showControl(card, data.control);
      // A refresh in flight read the control before this write: run one more after it.
      void refresh().then(refresh);
    } catch (error) {
      showStatus(error.message, true);
    } finally {
      button.disabled = false;
    }
  });
  container.appendChild(card);
  return card;
}

function showControl(card, control) {
  const paused = control.paused === true;
  card.dataset.paused = String(paused);
  const badge = $('.badge', card);
  badge.textContent = paused ? 'paused' : 'delivering';
  badge.classList.toggle('paused', paused);
  $('.toggle', card).textContent = paused ? 'Resume' : 'Pause';
}

function renderDestination(card, detail, failures, startedAt) {
  if (startedAt > controlChangedAt) showControl(card, detail.control);
  for (const [prefix, w] of [
    ['hour', detail.lastHour],
    ['day', detail.lastDay],
  ]) {
    for (const k of ['delivered', 'retrying', 'discarded', 'expired']) setField(card, `${prefix}-${k}`, number(w[k]));
    setField(card, `${prefix}-latency`, latencyText(w.latency));
    setField(card, `${prefix}-retry-codes`, codesText(w.statusCodes, 'retried'));
    setField(card, `${prefix}-discard-codes`, codesText(w.statusCodes, 'discarded'));
  }
  drawChart($('svg', card), detail.perMinute);
  renderFailures($('.failures tbody', card), failures);
}

function renderJobDbs(jobdbs) {
  const tbody = $('#jobdbs tbody');
  tbody.replaceChildren();
  for (const j of jobdbs) {
    const row = tbody.insertRow();
    row.dataset.state = j.state;
    cell(row, j.id);
    cell(row, j.state);
    cell(row, j.holder ? (j.holder.name ?? j.holder.session) : '–');
    cell(row, j.approxJobs === null ? '?' : number(j.approxJobs));
    cell(row, bytesText(j.bytes));
    cell(row, ageText(j.ageSeconds));
  }
}

function showStatus(text, isError) {
  const status = $('#status');
  status.textContent = text;
  status.classList.toggle('error', Boolean(isError));
}

let refreshing;
/** When the page last wrote a control: a refresh that started before it shows an older state. */
let controlChangedAt = 0;
async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const startedAt = performance.now();
    try {
      const minutes = $('#range').value;
      const overview = await api('GET', '/v1/delivery');
      const ids = overview.destinations.map((d) => d.destinationId);
      const details = await Promise.all(
        ids.map(async (id) => {
          const path = `/v1/delivery/destinations/${encodeURIComponent(id)}`;
          const [detail, failures] = await Promise.all([
            api('GET', `${path}?minutes=${minutes}`),
            api('GET', `${path}/failures?limit=${FAILURES_SHOWN}`),
          ]);
          return { id, detail, failures: failures.failures };
        }),
      );
      for (const card of document.querySelectorAll('section[data-destination]')) {
        if (!ids.includes(card.dataset.destination)) card.remove();
      }
      for (const d of details) renderDestination(cardFor(d.id), d.detail, d.failures, startedAt);
      $('#empty').hidden = ids.length > 0;
      renderJobDbs((await api('GET', '/v1/jobdbs')).jobdbs);
      document.body.dataset.refreshedAt = overview.generatedAt;
      showStatus(`updated ${new Date(overview.generatedAt).toLocaleTimeString()}`);
    } catch (error) {
      showStatus(`refresh failed: ${error.message}`, true);
    } finally {
      refreshing = undefined;
    }
  })();
  return refreshing;
}

$('#range').addEventListener('change', () => void refresh());
void refresh();
setInterval(() => void refresh(), REFRESH_MS);
