// The year-end statements page (/statements): start a run for a period and follow it (gifts
// read, then donor i of n), download what it wrote, fix what the letters say, and keep
// customers who are not donors (a bank, a vendor) out of every run.

import { $, clear, h, notice } from './dom.js';
import { api, errorText, ApiFailure } from './api.js';
import { money, plural, sentence } from './format.js';
import { loadQboStatus } from './qbo.js';

const FIELDS = ['organization', 'address', 'ein', 'signer_name', 'signer_title', 'opening', 'acknowledgement', 'closing'];
const POLL_MS = 1000;
let timer = null;
/** A run started from this page is being followed (its end is announced). */
let waiting = false;

export async function statementsPage() {
  loadQboStatus();
  $('#st-settings').addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveSettings(ev.submitter);
  });
  $('#st-run').addEventListener('submit', (ev) => {
    ev.preventDefault();
    start(ev.submitter);
  });
  $('#st-find').addEventListener('submit', (ev) => {
    ev.preventDefault();
    find();
  });
  let data;
  try {
    data = await api('GET', '/api/statements');
  } catch (e) {
    notice(errorText(e), 'error');
    return;
  }
  for (const f of FIELDS) $(`#st-${f}`).value = data.settings[f] || '';
  showProblems(data.problems);
  $('#st-from').value = data.period.from;
  $('#st-to').value = data.period.to;
  drawExcluded(data.excluded);
  drawLatest(data.latest);
}

function showProblems(problems) {
  for (const f of FIELDS) $(`#st-${f}-error`).textContent = '';
  for (const p of problems || []) {
    const el = $(`#st-${p.field}-error`);
    if (el) el.textContent = sentence(p.message);
  }
}

async function saveSettings(button) {
  const body = {};
  for (const f of FIELDS) body[f] = $(`#st-${f}`).value;
  if (button) button.disabled = true;
  try {
    const r = await api('PUT', '/api/statements/settings', body);
    showProblems(r.problems);
    notice(r.problems.length ? 'Saved. Fill in what is marked before writing the letters.' : 'Saved: the next letters say this.', r.problems.length ? 'info' : 'ok');
  } catch (e) {
    if (e instanceof ApiFailure && Array.isArray(e.details)) showProblems(e.details);
    notice(errorText(e), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

async function start(button) {
  if (button) button.disabled = true;
  try {
    const r = await api('POST', '/api/statements', {
      from: $('#st-from').value,
      to: $('#st-to').value,
      only_large: $('#st-only-large').checked,
    });
    notice(r.already_running ? 'A run is already under way; it is shown below.' : 'The letters are being written.', 'info');
    waiting = true;
    poll();
  } catch (e) {
    if (e instanceof ApiFailure && Array.isArray(e.details)) showProblems(e.details);
    notice(errorText(e), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

async function poll() {
  clearTimeout(timer);
  try {
    const data = await api('GET', '/api/statements');
    drawLatest(data.latest);
  } catch (e) {
    notice(errorText(e), 'error');
  }
}

const fmtDay = (iso) => {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || '');
  return m ? `${m[2]}/${m[3]}/${m[1]}` : iso || '';
};

function drawLatest(latest) {
  const box = $('#st-progress');
  const result = $('#st-result');
  clear(box);
  clear(result);
  if (!latest) return;
  const { job, params } = latest;
  const period = params ? `${fmtDay(params.from)} to ${fmtDay(params.to)}${params.only_large ? ', donors with a gift of $250 or more' : ''}` : '';
  box.dataset.state = job.state;
  if (job.state === 'queued' || job.state === 'running') {
    let line = 'Waiting for the worker…';
    let value = 0;
    let max = 1;
    if (job.stage === 'gather') line = `Reading gifts from QuickBooks: ${plural(job.page, 'receipt', 'receipts')} read`;
    if (job.stage === 'letters') {
      line = `Writing letters: donor ${job.page.toLocaleString('en-US')} of ${job.pages.toLocaleString('en-US')}`;
      value = job.page;
      max = Math.max(1, job.pages);
    }
    box.append(
      h('p', { 'data-testid': 'st-progress-line', text: `${line} (${period})` }),
      h('progress', { value, max, 'aria-label': 'Letters written' }),
    );
    timer = setTimeout(poll, POLL_MS);
    return;
  }
  if (job.state === 'failed' || job.state === 'dead') {
    if (waiting) notice('', 'info');
    waiting = false;
    box.append(h('p', { class: 'notice error', 'data-testid': 'st-failed', text: sentence(job.last_error || 'The run failed.') }));
    return;
  }
  const r = latest.result;
  if (!r) return;
  if (waiting) notice('The letters are ready.', 'ok');
  waiting = false;
  const w = r.written;
  result.append(
    h('p', { 'data-testid': 'st-summary', text: `${plural(w.letters, 'letter', 'letters')} (${plural(w.pages, 'page', 'pages')}) for ${plural(w.gifts, 'gift', 'gifts')}, ${money(w.total)} in all; ${period}.` }),
    h('p', { class: 'actions' },
      ...[['pdf', 'Letters to print (PDF)'], ['zip', 'A PDF per donor (ZIP)'], ['csv', 'Summary (CSV)']].map(([kind, label]) => {
        const f = r.files[kind];
        if (!f) return null;
        return h('a', {
          class: 'button secondary',
          href: `/api/statements/${encodeURIComponent(job.id)}/files/${kind}`,
          download: f.name,
          'data-testid': `st-download-${kind}`,
          text: `${label}, ${size(f.size)}`,
        });
      })),
  );
  if (r.zip_error) {
    result.append(h('p', { class: 'notice warning', 'data-testid': 'st-zip-error', text: sentence(r.zip_error) }));
  }
  if (w.below_large) {
    result.append(h('p', { class: 'muted', text: `${plural(w.below_large, 'donor', 'donors')} gave no single gift of $250 or more and got no letter.` }));
  }
  if (w.no_address.length) {
    const list = h('ul', { 'data-testid': 'st-no-address' });
    for (const d of w.no_address) {
      const b = h('button', { type: 'button', class: 'small secondary', text: 'Not a donor' });
      b.addEventListener('click', () => exclude(d.customer_id, d.name, b));
      list.append(h('li', { 'data-customer': d.customer_id }, `${d.name} `, b));
    }
    result.append(h('details', { open: w.no_address.length <= 10, 'data-testid': 'st-no-address-box' },
      h('summary', { text: `No address in QuickBooks (${w.no_address.length})` }),
      h('p', { class: 'muted', text: 'Their letters are written without an address: add one in QuickBooks and write the letters again, or hand them over. A customer who is not a donor can be left out.' }),
      list));
  }
}

const size = (bytes) => (bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1e3))} KB`);

function drawExcluded(list) {
  const box = $('#st-excluded');
  clear(box);
  if (!list.length) {
    box.append(h('p', { class: 'empty', text: 'None yet.' }));
    return;
  }
  const ul = h('ul', {});
  for (const c of list) {
    const b = h('button', { type: 'button', class: 'small secondary', text: 'Count as a donor' });
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await api('DELETE', `/api/statements/excluded/${encodeURIComponent(c.customer_id)}`);
        notice(`${c.name || c.customer_id} counts as a donor again.`, 'ok');
        refreshExcluded();
      } catch (e) {
        notice(errorText(e), 'error');
        b.disabled = false;
      }
    });
    ul.append(h('li', { 'data-testid': 'st-excluded-row' }, `${c.name || c.customer_id} `, b));
  }
  box.append(ul);
}

async function refreshExcluded() {
  try {
    drawExcluded((await api('GET', '/api/statements')).excluded);
  } catch (e) {
    notice(errorText(e), 'error');
  }
}

async function exclude(customerId, name, button) {
  if (button) button.disabled = true;
  try {
    await api('POST', '/api/statements/excluded', { customer_id: customerId, name });
    notice(`${name} is left out of the next runs.`, 'ok');
    refreshExcluded();
  } catch (e) {
    notice(errorText(e), 'error');
    if (button) button.disabled = false;
  }
}

async function find() {
  const box = $('#st-found');
  clear(box);
  const q = $('#st-find-q').value.trim();
  if (!q) return;
  try {
    const r = await api('GET', `/api/qbo/customers?q=${encodeURIComponent(q)}`);
    if (!r.customers.length) {
      box.append(h('p', { class: 'empty', text: 'No customer by that name.' }));
      return;
    }
    const ul = h('ul', {});
    for (const c of r.customers.slice(0, 10)) {
      const b = h('button', { type: 'button', class: 'small secondary', 'data-testid': 'st-exclude', text: 'Leave out' });
      b.addEventListener('click', () => exclude(c.id, c.display_name, b));
      ul.append(h('li', {}, `${c.display_name} `, b));
    }
    box.append(ul);
  } catch (e) {
    notice(errorText(e), 'error');
  }
}
