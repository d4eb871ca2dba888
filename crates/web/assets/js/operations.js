// The operations page (/operations): worker dynos and their processes with memory over the
// last hour, the queues, and the jobs with retry and purge. It polls /api/operations every
// few seconds while the tab is visible; the charts are inline SVG drawn here (no library).

import { $, clear, h, notice } from './dom.js';
import { api, errorText } from './api.js';
import { loadQboStatus } from './qbo.js';

const POLL_MS = 5000;
const HOUR_MS = 3600_000;
const SVG = 'http://www.w3.org/2000/svg';

let timer = null;
let loading = false;

export function operationsPage() {
  loadQboStatus();
  $('#ops-state').addEventListener('change', () => refresh());
  $('#ops-purge').addEventListener('submit', (e) => {
    e.preventDefault();
    purge(e.submitter || $('[data-testid=ops-purge]'));
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  if (loading) return;
  loading = true;
  try {
    const q = new URLSearchParams({ limit: '50' });
    const s = $('#ops-state').value;
    if (s) q.set('state', s);
    const data = await api('GET', `/api/operations?${q}`);
    draw(data);
    $('#ops-updated').textContent = `Updated ${new Date(data.now).toLocaleTimeString('en-US')}; refreshes every ${POLL_MS / 1000} s.`;
  } catch (e) {
    notice(errorText(e), 'error');
  } finally {
    loading = false;
    if (!document.hidden) timer = setTimeout(refresh, POLL_MS);
  }
}

function draw(data) {
  drawDynos(data);
  drawChildren(data);
  drawQueues(data);
  drawJobs(data);
}

const mb = (v) => (v === null || v === undefined ? '' : `${Math.round(v)} MB`);

/** How long ago (or how long), in words people read at a glance. */
function span(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * Where the charts start: an hour back, or the first sample when the series are younger (a
 * fresh deploy), so a few minutes of history fill the chart instead of its last pixels.
 */
function chartStart(seriesList, now) {
  let first = now;
  for (const s of seriesList) if (s.length) first = Math.min(first, s[0][0]);
  return Math.max(now - HOUR_MS, Math.min(first, now - 60_000));
}

/** "the last hour" or "the last 4 min": what the charts' width stands for. */
function windowText(from, now) {
  const min = Math.round((now - from) / 60_000);
  return min >= 59 ? 'the last hour' : `the last ${Math.max(1, min)} min`;
}

/**
 * A sparkline of `samples` ([ms, MB] pairs, oldest first) from `from` to `now`, from 0 to
 * `top` MB; `limit` (MB) is drawn as a dashed line when given.
 */
function sparkline(samples, from, now, top, label, limit) {
  const W = 260;
  const H = 44;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const x = (t) => Math.max(0, Math.min(W, W - ((now - t) / Math.max(1, now - from)) * W));
  const y = (v) => H - 2 - (Math.min(v, top) / top) * (H - 4);
  const line = (cls, x1, y1, x2, y2) => {
    const l = document.createElementNS(SVG, 'line');
    for (const [k, v] of Object.entries({ x1, y1, x2, y2, class: cls })) l.setAttribute(k, v);
    svg.append(l);
  };
  line('spark-axis', 0, H - 1, W, H - 1);
  if (limit) line('spark-limit', 0, y(limit), W, y(limit));
  if (samples.length) {
    const pts = samples.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    // One sample still shows: a short flat stroke ending at it.
    if (samples.length === 1) pts.unshift(`${Math.max(0, x(samples[0][0]) - 3).toFixed(1)},${y(samples[0][1]).toFixed(1)}`);
    const area = document.createElementNS(SVG, 'polygon');
    const first = pts[0].split(',')[0];
    const last = pts[pts.length - 1].split(',')[0];
    area.setAttribute('points', `${first},${H - 1} ${pts.join(' ')} ${last},${H - 1}`);
    area.setAttribute('class', 'spark-area');
    svg.append(area);
    const poly = document.createElementNS(SVG, 'polyline');
    poly.setAttribute('points', pts.join(' '));
    poly.setAttribute('class', 'spark-line');
    svg.append(poly);
  }
  const title = document.createElementNS(SVG, 'title');
  title.textContent = label;
  svg.append(title);
  return svg;
}

const highest = (samples) => samples.reduce((m, s) => Math.max(m, s[1]), 0);

function drawDynos(data) {
  const box = $('#ops-dynos');
  clear(box);
  if (!data.dynos.length) {
    box.append(h('p', { class: 'empty', text: 'No worker dyno is reporting. Is the worker process running (heroku ps)?' }));
    return;
  }
  const from = chartStart(data.dynos.map((d) => d.series), data.now);
  for (const d of data.dynos) {
    const top = Math.max(d.limit_mb || 0, highest(d.series), 1);
    const stale = data.now - d.at > 10_000;
    box.append(h('div', { class: 'ops-dyno', 'data-testid': 'ops-dyno', 'data-children': d.children },
      h('div', { class: 'ops-facts' },
        h('strong', { text: d.dyno }),
        stale ? h('span', { class: 'badge warn', text: 'not reporting' }) : null,
        h('span', { text: `${d.children} of at most ${d.max_children} processes (${d.mode})` }),
        h('span', { text: `using ${mb(d.total_mb)} of ${mb(d.limit_mb)}` }),
        h('span', { text: `one more needs about ${mb(d.estimate_mb)}; room for that: ${d.headroom_mb >= 0 ? mb(d.headroom_mb) : 'none'}` }),
        h('span', { text: `${d.waiting} waiting` }),
        h('span', { text: `Redis: ${d.redis_clients ?? '?'} clients connected, room for ${d.redis_children} processes` })),
      h('figure', { class: 'ops-chart' },
        sparkline(d.series, from, data.now, top, `${d.dyno}: ${mb(d.total_mb)} now, highest ${mb(highest(d.series))} in ${windowText(from, data.now)}, limit ${mb(d.limit_mb)}`, d.limit_mb),
        h('figcaption', { class: 'muted', text: `memory, ${windowText(from, data.now)}; dashed: the limit` }))));
  }
}

function childState(c, data) {
  if (!c.live) return h('span', { class: 'badge', text: 'stopped' });
  if (!c.consuming) return h('span', { class: 'badge danger', text: 'not fetching jobs' });
  if (c.current_job) {
    const job = data.jobs.find((j) => j.id === c.current_job);
    return h('span', { class: 'badge info', text: job ? `working: ${job.file_name}` : 'working' });
  }
  return h('span', { class: 'badge ok', text: 'idle' });
}

function drawChildren(data) {
  const box = $('#ops-children');
  clear(box);
  if (!data.children.length) {
    box.append(h('p', { class: 'empty', text: 'No worker process in the last hour.' }));
    return;
  }
  const top = Math.max(100, ...data.children.map((c) => highest(c.series) * 1.1));
  const from = chartStart(data.children.map((c) => c.series), data.now);
  const body = h('tbody');
  for (const c of data.children) {
    const high = Math.max(highest(c.series), c.live ? c.rss_mb || 0 : 0);
    body.append(h('tr', { 'data-testid': 'ops-child', 'data-live': c.live ? '1' : '0', 'data-busy': c.current_job ? '1' : '0', 'data-samples': c.series.length },
      h('td', {}, h('code', { text: c.id }), c.pid ? h('div', { class: 'muted', text: `pid ${c.pid}` }) : null),
      h('td', {}, childState(c, data)),
      h('td', { class: 'num', text: c.live ? mb(c.rss_mb) : '' }),
      h('td', { class: 'num', text: mb(high) }),
      h('td', { class: 'num', text: c.jobs_done ?? '' }),
      h('td', { text: c.last_seen ? `${span(data.now - c.last_seen)} ago` : (c.series.length ? `${span(data.now - c.series[c.series.length - 1][0])} ago` : '') }),
      h('td', {}, sparkline(c.series, from, data.now, top, `${c.id}: highest ${mb(high)} in ${windowText(from, data.now)}`))));
  }
  box.append(h('div', { class: 'table-scroll' }, h('table', { class: 'list ops' },
    h('thead', {}, h('tr', {}, ['Process', 'State', 'Memory now', 'Highest', 'Jobs done', 'Last heard', `Memory, ${windowText(from, data.now)} (0-${Math.round(top)} MB)`].map((t) => h('th', { text: t })))),
    body)));
}

function drawQueues(data) {
  const box = $('#ops-queues');
  clear(box);
  const c = data.counts;
  box.append(h('div', { class: 'ops-facts' },
    ...data.queues.map((q) => h('span', { 'data-testid': `ops-queue-${q.name}`, 'data-waiting': q.waiting },
      h('strong', { text: q.name === 'qbo' ? 'QuickBooks' : 'Documents' }), `: ${q.waiting} waiting, ${q.running} running`)),
    h('span', { class: 'muted', text: `jobs kept: ${c.queued} queued, ${c.running} running, ${c.done} done, ${c.failed} failed, ${c.dead} dead` })));
}

const STATES = { queued: '', running: 'info', done: 'ok', failed: 'danger', dead: 'danger' };

function drawJobs(data) {
  const box = $('#ops-jobs');
  clear(box);
  if (!data.jobs.length) {
    box.append(h('p', { class: 'empty', text: 'No jobs.' }));
    return;
  }
  const body = h('tbody');
  for (const j of data.jobs) {
    const end = j.finished_at || data.now;
    const took = j.started_at ? span(end - j.started_at) : `waiting ${span(data.now - j.created_at)}`;
    const pages = j.pages ? `${j.page} of ${j.pages}` : '';
    const actions = h('td', { class: 'actions' });
    if (j.state === 'failed' || j.state === 'dead') {
      const b = h('button', { type: 'button', class: 'small', 'data-testid': 'ops-retry', text: 'Retry' });
      b.addEventListener('click', () => retry(j, b));
      actions.append(b);
    }
    body.append(h('tr', { 'data-testid': 'ops-job', 'data-state': j.state, 'data-id': j.id },
      h('td', {}, j.file_name, h('div', { class: 'muted' }, h('code', { text: j.id.slice(0, 12) }))),
      h('td', {}, j.deposit_id ? h('a', { href: `/deposits/${encodeURIComponent(j.deposit_id)}`, text: 'deposit' }) : ''),
      h('td', {}, h('span', { class: `badge ${STATES[j.state] || ''}`, text: j.state })),
      h('td', { text: j.stage || '' }),
      h('td', { class: 'num', text: pages }),
      h('td', { class: 'num', text: j.peak_rss_mb ? mb(j.peak_rss_mb) : (j.state === 'running' && j.rss_mb ? `${mb(j.rss_mb)} now` : '') }),
      h('td', { class: 'num', text: took }),
      h('td', { class: 'num', text: j.crashes || '' }),
      h('td', { class: 'ops-error', text: j.last_error || '' }),
      actions));
  }
  box.append(h('div', { class: 'table-scroll' }, h('table', { class: 'list ops' },
    h('thead', {}, h('tr', {}, ['File', 'Deposit', 'State', 'Stage', 'Page', 'Peak memory', 'Duration', 'Crashes', 'Error', ''].map((t) => h('th', { text: t })))),
    body)));
}

async function retry(job, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/jobs/${encodeURIComponent(job.id)}/retry`);
    notice(`${job.file_name} is queued again.`, 'ok');
  } catch (e) {
    notice(errorText(e), 'error');
  } finally {
    refresh();
  }
}

async function purge(button) {
  const days = Number($('#ops-purge-days').value);
  if (!Number.isFinite(days) || days < 0 || days > 366) {
    notice('Give a number of days from 0 to 366.', 'error');
    return;
  }
  button.disabled = true;
  try {
    const r = await api('POST', '/api/jobs/purge', { older_than_hours: Math.round(days * 24) });
    notice(`Purged ${r.purged} finished or dead job${r.purged === 1 ? '' : 's'}.`, 'ok');
  } catch (e) {
    notice(errorText(e), 'error');
  } finally {
    button.disabled = false;
    refresh();
  }
}
