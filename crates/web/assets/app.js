// fom-qbo: the treasurer's pages. Plain JavaScript, no build step, no inline script or style
// (the content security policy forbids both). The server renders a shell per page; this file
// loads the data from the JSON API and keeps the page in step with it.
//
// Errors are shown as readable inline messages (never alert(), never raw JSON).

'use strict';

// ---- small helpers ----------------------------------------------------------------------

/** Builds an element: h('button', {class: 'x', onclick: fn, 'data-testid': 't'}, 'text'). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k === 'value') {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** "1234.5" -> "1,234.50" (strings only: money never goes through binary floats). */
function fmtAmount(s) {
  if (s === null || s === undefined || s === '') return '';
  const str = String(s);
  const neg = str.startsWith('-');
  const [int, frac = ''] = (neg ? str.slice(1) : str).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}${grouped}.${(frac + '00').slice(0, 2)}`;
}

const money = (s) => (s === null || s === undefined || s === '' ? '' : `$${fmtAmount(s)}`);

/** Amount in cents from a server string ("25.5" -> 2550). */
function cents(s) {
  if (!s) return 0;
  const [int, frac = ''] = String(s).split('.');
  return parseInt(int, 10) * 100 + parseInt((frac + '00').slice(0, 2), 10);
}

const centsToString = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

/** "2026-03-15" -> "03/15/2026". */
function fmtDate(iso) {
  if (!iso) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  return m ? `${m[2]}/${m[3]}/${m[1]}` : iso;
}

function fmtTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return d.toLocaleDateString('en-US', { year: 'numeric', month: '2-digit', day: '2-digit' });
}

function plural(n, one, many) {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

// What the server accepts (crates/core/src/donation.rs parse_amount / parse_date).
const AMOUNT_RE = /^(?:USD)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?$/;
const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august',
  'september', 'october', 'november', 'december'];

function checkAmount(raw) {
  const s = raw.replace(/\s+/g, '');
  if (s === '') return null;
  if (!AMOUNT_RE.test(s)) return 'Enter an amount like 1,234.50';
  const digits = s.replace(/^(?:USD)?\$?/, '').replace(/,/g, '');
  if (Number(digits) <= 0) return 'The amount must be more than zero';
  return null;
}

function validDay(y, m, d) {
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

function checkDate(raw) {
  const s = raw.trim().replace(/\.$/, '');
  if (s === '') return null;
  const bad = 'Enter a date like 03/15/2026';
  let m = /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})$/.exec(s);
  if (m) {
    let y = parseInt(m[3], 10);
    if (m[3].length === 2) y += y <= 68 ? 2000 : 1900;
    return validDay(y, +m[1], +m[2]) ? null : bad;
  }
  m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(s);
  if (m) return validDay(+m[1], +m[2], +m[3]) ? null : bad;
  m = /^(\d{1,2})-(\d{1,2})-(\d{4})$/.exec(s);
  if (m) return validDay(+m[3], +m[1], +m[2]) ? null : bad;
  m = /^([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})$/.exec(s);
  if (m) {
    const name = m[1].toLowerCase();
    const month = MONTHS.findIndex((full) => full === name || full.slice(0, 3) === name);
    return month >= 0 && validDay(+m[3], month + 1, +m[2]) ? null : bad;
  }
  return bad;
}

const DATE_FIELDS = new Set(['payment_date', 'check_date', 'postmark_date', 'deposit_date']);

function checkField(field, value) {
  if (field === 'amount') return checkAmount(value);
  if (DATE_FIELDS.has(field)) return checkDate(value);
  return null;
}

// ---- the JSON API -----------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

function toLogin() {
  const next = encodeURIComponent(location.pathname);
  location.assign(`/login?next=${next}`);
}

/** Calls the API; resolves to the JSON body, rejects with an ApiFailure people can read. */
async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiFailure(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  if (res.status === 401) {
    toLogin();
    throw new ApiFailure(401, 'sign_in_required', 'Your session ended; sign in again.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    if (e && e.message) throw new ApiFailure(res.status, e.code, sentence(e.message), e.details);
    throw new ApiFailure(res.status, 'http', `The server answered ${res.status}; try again in a minute.`);
  }
  return data;
}

/** Server messages start lower-case; people read sentences. */
function sentence(s) {
  const t = String(s || '').trim();
  if (!t) return '';
  const cap = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(cap) ? cap : `${cap}.`;
}

function errorText(e) {
  if (e instanceof ApiFailure) return e.message;
  return 'Something went wrong. Reload the page and try again.';
}

function notice(text, kind = 'info') {
  const el = $('#notice');
  if (!el) return;
  el.textContent = text || '';
  el.className = `notice ${text ? kind : ''}`;
}

// ---- QuickBooks connection badge ----------------------------------------------------------

const qbo = { status: null, usable: false, configured: false };

async function loadQboStatus() {
  const box = $('#qbo-status');
  let st;
  try {
    st = await api('GET', '/api/qbo/status');
  } catch (e) {
    if (box) clear(box).append(h('span', { class: 'badge muted', text: 'QuickBooks status unknown' }));
    return null;
  }
  qbo.status = st;
  qbo.configured = !!st.configured;
  qbo.usable = !!(st.configured && st.connected);
  if (!box) return st;
  clear(box);
  if (!st.configured) {
    box.append(h('span', { class: 'badge muted', 'data-state': 'not-configured', text: 'QuickBooks is not set up' }));
  } else if (st.reconnect_needed) {
    box.append(
      h('span', { class: 'badge danger', 'data-state': 'reconnect', text: 'QuickBooks: reconnect needed', title: st.message || '' }),
      h('a', { href: '/qbo/connect', class: 'button small', 'data-testid': 'qbo-connect', text: 'Reconnect' }),
    );
  } else if (st.connected) {
    const env = st.environment === 'production' ? 'production' : 'sandbox';
    box.append(
      h('span', { class: `badge ${env === 'production' ? 'ok' : 'info'}`, 'data-state': env, text: `QuickBooks: ${env}` }),
      h('a', { href: '/qbo/connect', class: 'quiet-link', 'data-testid': 'qbo-connect', text: 'Reconnect' }),
    );
  } else {
    box.append(
      h('span', { class: 'badge warn', 'data-state': 'not-connected', text: 'QuickBooks: not connected' }),
      h('a', { href: '/qbo/connect', class: 'button small', 'data-testid': 'qbo-connect', text: 'Connect' }),
    );
  }
  return st;
}

// ---- deposits list ----------------------------------------------------------------------

async function depositsPage() {
  loadQboStatus();
  if (new URLSearchParams(location.search).get('qbo') === 'connected') {
    notice('QuickBooks is connected.', 'ok');
  }
  const form = $('#new-deposit');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = $('button[type=submit]', form);
    button.disabled = true;
    const name = $('#new-deposit-name').value.trim();
    try {
      const d = await api('POST', '/api/deposits', name ? { name } : {});
      location.assign(`/deposits/${encodeURIComponent(d.id)}`);
    } catch (e) {
      notice(errorText(e), 'error');
      button.disabled = false;
    }
  });
  const box = $('#deposits');
  try {
    const { deposits } = await api('GET', '/api/deposits');
    clear(box);
    if (!deposits.length) {
      box.append(h('p', { class: 'empty', 'data-testid': 'deposits-empty' },
        'No deposits yet. Start one with “New deposit”, then add the scans and CSV files.'));
      return;
    }
    const rows = deposits.map((d) => h('tr', { 'data-testid': 'deposit-row', 'data-deposit-id': d.id },
      h('td', {}, h('a', { href: `/deposits/${encodeURIComponent(d.id)}`, text: d.name })),
      h('td', { text: fmtTime(d.created_at) }),
      h('td', { class: 'num', text: d.files.toLocaleString('en-US') }),
      h('td', { class: 'num', text: d.records.toLocaleString('en-US') }),
      h('td', { class: 'num', text: money(d.total) }),
      h('td', { class: 'num', text: d.sent.toLocaleString('en-US') }),
      h('td', { class: 'num', text: d.unsent.toLocaleString('en-US') }),
      h('td', { class: 'num', text: d.errors ? d.errors.toLocaleString('en-US') : '' }),
    ));
    box.append(h('table', { class: 'list' },
      h('caption', { class: 'visually-hidden', text: 'Deposits, newest first' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Deposit' }),
        h('th', { scope: 'col', text: 'Date' }),
        h('th', { scope: 'col', class: 'num', text: 'Files' }),
        h('th', { scope: 'col', class: 'num', text: 'Records' }),
        h('th', { scope: 'col', class: 'num', text: 'Total' }),
        h('th', { scope: 'col', class: 'num', text: 'Sent' }),
        h('th', { scope: 'col', class: 'num', text: 'Not sent' }),
        h('th', { scope: 'col', class: 'num', text: 'Problems' }))),
      h('tbody', {}, rows)));
  } catch (e) {
    clear(box).append(h('p', { class: 'alert', role: 'alert', text: errorText(e) }));
  }
}

// ---- the deposit page -------------------------------------------------------------------

const D = {
  id: '',
  deposit: null,
  files: [],          // server file views
  uploads: [],        // local uploads: {key, file, name, size, loaded, state, error}
  es: null,           // EventSource while files are being read
  lastRecords: -1,
  expanded: new Set(),
  reloadTimer: 0,
  sendPoll: 0,
  uploadSeq: 0,
};

const MATCH = {
  matched: ['Matched', 'ok'],
  address_changed: ['Address changed', 'warn'],
  needs_review: ['Needs review', 'warn'],
  new_donor: ['New donor', 'info'],
  unmatched: ['Not matched', 'muted'],
};

const STAGES = {
  download: 'Reading the file',
  render: 'Preparing pages',
  extract: 'Reading',
  merge: 'Combining duplicates',
  match: 'Matching donors',
  done: 'Finishing',
};

function recordName(r) {
  return (r.payer && (r.payer.organization_name || (r.payer.aliases || [])[0])) || '(no name)';
}

function sourceText(src) {
  if (!src) return '';
  let s = src.file || '';
  if (src.pages && src.pages.length) s += ` p. ${src.pages.join(', ')}`;
  else if (src.line) s += ` line ${src.line}`;
  return s;
}

async function depositPage() {
  D.id = $('#deposit').dataset.depositId;
  setupUpload();
  $('#report-open').addEventListener('click', openReport);
  const st = await loadQboStatus();
  renderSendPanel(st);
  await reloadDeposit();
  if (D.deposit && D.deposit.processing) watchProgress();
  resumeSend();
}

async function reloadDeposit() {
  try {
    const d = await api('GET', `/api/deposits/${D.id}`);
    D.deposit = d;
    D.files = d.files;
    D.lastRecords = d.records.length;
    renderFiles();
    renderRecords();
  } catch (e) {
    notice(errorText(e), 'error');
  }
}

function scheduleReload(ms = 250) {
  clearTimeout(D.reloadTimer);
  D.reloadTimer = setTimeout(reloadDeposit, ms);
}

// ---- files: upload and progress -----------------------------------------------------------

function setupUpload() {
  const input = $('#file-input');
  const zone = $('#dropzone');
  input.addEventListener('change', () => {
    const files = Array.from(input.files || []);
    input.value = '';
    if (files.length) uploadFiles(files);
  });
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    const files = Array.from((ev.dataTransfer && ev.dataTransfer.files) || []);
    if (files.length) uploadFiles(files);
  });
}

/** Sends the files in one request; each file's bar follows its own bytes. */
function uploadFiles(files) {
  const entries = files.map((file) => ({
    key: `u${++D.uploadSeq}`, file, name: file.name, size: file.size, loaded: 0, state: 'uploading', error: '',
  }));
  D.uploads.push(...entries);
  renderFiles();
  const form = new FormData();
  for (const e of entries) form.append('files', e.file, e.file.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/api/deposits/${D.id}/files`);
  xhr.setRequestHeader('Accept', 'application/json');
  const totalBytes = entries.reduce((n, e) => n + e.size, 0) || 1;
  xhr.upload.addEventListener('progress', (ev) => {
    if (!ev.lengthComputable) return;
    let sent = (ev.loaded / ev.total) * totalBytes;
    for (const e of entries) {
      e.loaded = Math.max(0, Math.min(e.size, sent));
      sent -= e.size;
    }
    renderFiles();
  });
  const fail = (message) => {
    for (const e of entries) {
      e.state = 'failed';
      e.error = message;
    }
    renderFiles();
  };
  xhr.addEventListener('error', () => fail('The upload was interrupted. Check the connection and try again.'));
  xhr.addEventListener('load', () => {
    if (xhr.status === 401) {
      toLogin();
      return;
    }
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch {
      data = null;
    }
    if (!data || !Array.isArray(data.files)) {
      const msg = data && data.error && data.error.message;
      fail(msg ? sentence(msg) : `The server answered ${xhr.status}; try again in a minute.`);
      return;
    }
    data.files.forEach((v, i) => {
      const e = entries[i];
      if (!e) return;
      if (v.accepted) {
        e.state = 'accepted';
        e.fileId = v.file_id;
      } else {
        e.state = 'failed';
        e.error = sentence(v.error || 'The file was not accepted.');
      }
    });
    // Accepted files now live on the server; their bars follow the job from here.
    D.uploads = D.uploads.filter((e) => e.state !== 'accepted');
    renderFiles();
    scheduleReload(0);
    watchProgress();
  });
  xhr.send(form);
}

function watchProgress() {
  if (D.es) return;
  const es = new EventSource(`/api/deposits/${D.id}/events`);
  D.es = es;
  const onProgress = (ev) => {
    let p;
    try {
      p = JSON.parse(ev.data);
    } catch {
      return;
    }
    D.files = p.files;
    renderFiles();
    if (p.records !== D.lastRecords || p.finished) {
      D.lastRecords = p.records;
      scheduleReload(p.finished ? 0 : 400);
    }
    if (p.finished) stopWatching();
  };
  es.addEventListener('progress', onProgress);
  es.addEventListener('done', onProgress);
  es.addEventListener('gone', () => {
    stopWatching();
    notice('This deposit has expired or was removed.', 'error');
  });
}

function stopWatching() {
  if (D.es) {
    D.es.close();
    D.es = null;
  }
}

function fileStatus(f) {
  switch (f.state) {
    case 'queued':
      return 'Waiting to start…';
    case 'running': {
      const stage = STAGES[f.stage] || 'Working';
      if (f.pages > 0 && (f.stage === 'extract' || f.stage === 'render')) {
        return `${stage}: page ${Math.min(f.page, f.pages)} of ${f.pages}`;
      }
      return `${stage}…`;
    }
    case 'done':
      return f.pages > 0 ? `Done: ${plural(f.pages, 'page', 'pages')} read` : 'Done';
    case 'expired':
      return 'Failed';
    default:
      return 'Failed';
  }
}

function renderFiles() {
  const list = $('#files');
  if (!list) return;
  clear(list);
  if (!D.files.length && !D.uploads.length) {
    list.append(h('li', { class: 'empty', text: 'No files yet.' }));
    return;
  }
  for (const f of D.files) {
    const failed = ['failed', 'dead', 'expired'].includes(f.state);
    const bar = h('progress', { max: 100, 'aria-label': `Progress of ${f.name}` });
    if (f.state === 'done' || failed) bar.value = 100;
    else if (f.state === 'running' && f.pages > 0) bar.value = Math.round((100 * Math.min(f.page, f.pages)) / f.pages);
    else if (f.state === 'queued') bar.value = 0;
    // (running without a page count: an indeterminate bar)
    list.append(h('li', { class: `file ${failed ? 'failed' : f.state}`, 'data-testid': 'file-row', 'data-file-name': f.name, 'data-state': failed ? 'failed' : f.state },
      h('span', { class: 'file-name', text: f.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', text: fileStatus(f) }),
      failed ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: sentence(f.error || 'Reading this file failed.') }) : null,
      failed && f.state !== 'expired'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: (ev) => retryFile(f, ev.currentTarget), text: 'Retry' })
        : null,
    ));
  }
  for (const u of D.uploads) {
    const bar = h('progress', { max: 100, value: u.state === 'failed' ? 100 : Math.round((100 * u.loaded) / (u.size || 1)), 'aria-label': `Upload of ${u.name}` });
    list.append(h('li', { class: `file ${u.state}`, 'data-testid': 'file-row', 'data-file-name': u.name, 'data-state': u.state },
      h('span', { class: 'file-name', text: u.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', text: u.state === 'failed' ? 'Not uploaded' : `Uploading: ${Math.round((100 * u.loaded) / (u.size || 1))}%` }),
      u.state === 'failed' ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: u.error }) : null,
      u.state === 'failed'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: () => { D.uploads = D.uploads.filter((x) => x !== u); uploadFiles([u.file]); }, text: 'Try again' })
        : null,
    ));
  }
}

async function retryFile(f, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/deposits/${D.id}/files/${encodeURIComponent(f.id)}/retry`);
    notice(`Reading ${f.name} again.`, 'info');
    await reloadDeposit();
    watchProgress();
  } catch (e) {
    button.disabled = false;
    notice(errorText(e), 'error');
  }
}

// ---- the review table ---------------------------------------------------------------------

const COLUMNS = ['', 'Donor', 'Check / ref', 'Amount', 'Date', 'Memo', 'Source', 'Donor match', 'QuickBooks', 'Actions'];

function renderRecords() {
  const box = $('#records');
  const d = D.deposit;
  if (!box || !d) return;
  renderTotals();
  if (!d.records.length && !d.errors.length) {
    clear(box).append(h('p', { class: 'empty', 'data-testid': 'records-empty' },
      D.files.length
        ? 'No records yet. Rows appear here as each file is read.'
        : 'No records yet. Add the deposit’s scans and CSV files above; rows appear here as each file is read.'));
    return;
  }
  let table = $('table.records', box);
  if (!table) {
    clear(box);
    table = h('table', { class: 'records', 'data-testid': 'records-table' },
      h('caption', { class: 'visually-hidden', text: 'Donation records of this deposit; every field can be edited' }),
      h('thead', {}, h('tr', {}, COLUMNS.map((c, i) => h('th', { scope: 'col', class: [3].includes(i) ? 'num' : '', text: c })))),
      h('tfoot', {}),
    );
    box.append(table);
  }
  // Keep the rows being edited; rebuild the others.
  const existing = new Map($$('tbody.record', table).map((tb) => [tb.dataset.recordId, tb]));
  const keep = new Set();
  let anchor = $('thead', table);
  for (const r of d.records) {
    const id = r.id;
    keep.add(id);
    let tb = existing.get(id);
    if (tb && tb.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') {
      refreshRowParts(tb, r);
    } else {
      const fresh = recordBody(r);
      if (tb) tb.replaceWith(fresh);
      tb = fresh;
    }
    if (anchor.nextSibling !== tb) anchor.after(tb);
    anchor = tb;
  }
  for (const [id, tb] of existing) if (!keep.has(id)) tb.remove();
  // Pages and files that gave no records.
  $$('tbody.error-rows', table).forEach((tb) => tb.remove());
  if (d.errors.length) {
    const tb = h('tbody', { class: 'error-rows' }, d.errors.map((e) => h('tr', { class: 'error-row', 'data-testid': 'error-row' },
      h('td', { colspan: COLUMNS.length },
        h('span', { class: 'badge danger', text: 'Not read' }), ' ',
        h('strong', { text: e.file }), e.pages && e.pages.length ? ` p. ${e.pages.join(', ')}` : '',
        ': ', sentence(e.reason)))));
    anchor.after(tb);
  }
  const foot = $('tfoot', table);
  clear(foot).append(h('tr', {},
    h('th', { scope: 'row', colspan: 3, class: 'num', text: `Total of ${plural(d.records.length, 'record', 'records')}` }),
    h('td', { class: 'num strong', 'data-testid': 'records-total', text: money(d.total) }),
    h('td', { colspan: COLUMNS.length - 4 })));
}

function renderTotals() {
  const d = D.deposit;
  const el = $('#totals');
  if (!el || !d) return;
  const sent = d.records.filter((r) => r.qbo && r.qbo.sync_status === 'sent').length;
  el.textContent = d.records.length
    ? `${plural(d.records.length, 'record', 'records')} · ${money(d.total)} · ${sent.toLocaleString('en-US')} sent · ${(d.records.length - sent).toLocaleString('en-US')} not sent`
    : '';
}

function recordById(id) {
  return D.deposit && D.deposit.records.find((r) => r.id === id);
}

function replaceRecord(rec) {
  const d = D.deposit;
  const i = d.records.findIndex((r) => r.id === rec.id);
  if (i >= 0) d.records[i] = rec;
  const total = d.records.reduce((n, r) => n + cents(r.amount), 0);
  d.total = centsToString(total);
}

/** The field's value as the inputs show it. */
function fieldValue(r, field) {
  const c = r.contact || {};
  const p = r.payer || {};
  switch (field) {
    case 'name': return (p.aliases || [])[0] || '';
    case 'organization_name': return p.organization_name || '';
    case 'salutation': return p.salutation || '';
    case 'amount': return fmtAmount(r.amount);
    case 'payment_date': case 'check_date': case 'postmark_date': case 'deposit_date':
      return fmtDate(r[field]);
    case 'address_line_1': case 'city': case 'state': case 'zip': case 'email': case 'phone':
      return c[field] || '';
    default: return r[field] || '';
  }
}

const FIELD_LABELS = {
  name: 'Donor name', organization_name: 'Organization', salutation: 'Salutation', payment_ref: 'Check number or reference',
  amount: 'Amount', payment_date: 'Date', check_date: 'Check date', postmark_date: 'Postmark date',
  deposit_date: 'Deposit date', deposit_method: 'Deposit method', memo: 'Memo', address_line_1: 'Address',
  city: 'City', state: 'State', zip: 'ZIP', email: 'Email', phone: 'Phone',
};

function fieldInput(r, field, opts = {}) {
  const name = recordName(r);
  const errId = `err-${r.id}-${field}`;
  const input = h('input', {
    type: 'text',
    class: `cell-input ${field === 'amount' ? 'num' : ''}`,
    'data-field': field,
    'data-testid': `field-${field}`,
    'aria-label': opts.label ? undefined : `${FIELD_LABELS[field]} of ${name}`,
    id: opts.id,
    inputmode: field === 'amount' ? 'decimal' : undefined,
    autocomplete: 'off',
    spellcheck: field === 'memo' ? undefined : 'false',
    placeholder: opts.placeholder,
    value: fieldValue(r, field),
  });
  input.dataset.saved = input.value;
  const err = h('span', { class: 'field-error', id: errId, 'data-testid': 'field-error', hidden: true });
  input.addEventListener('input', () => showFieldError(input, err, checkField(field, input.value)));
  input.addEventListener('change', () => saveField(r.id, input, err));
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      saveField(r.id, input, err);
    } else if (ev.key === 'Escape') {
      input.value = input.dataset.saved;
      showFieldError(input, err, null);
    }
  });
  const parts = [input, err];
  if (opts.label) {
    return h('div', { class: 'field' }, h('label', { for: opts.id, text: opts.label }), ...parts);
  }
  return parts;
}

function showFieldError(input, err, message) {
  if (message) {
    err.textContent = message;
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', err.id);
  } else {
    err.textContent = '';
    err.hidden = true;
    input.removeAttribute('aria-invalid');
    input.removeAttribute('aria-describedby');
  }
}

async function saveField(recordId, input, err) {
  const field = input.dataset.field;
  const value = input.value.trim();
  if (value === input.dataset.saved || value === input.dataset.pending) return;
  const problem = checkField(field, value);
  showFieldError(input, err, problem);
  if (problem) return;
  input.dataset.pending = value;
  const tb = input.closest('tbody.record');
  setSaveState(tb, 'saving', 'Saving…');
  try {
    const rec = await api('PATCH', `/api/deposits/${D.id}/records/${recordId}`, { [field]: value === '' ? null : value });
    delete input.dataset.pending;
    replaceRecord(rec);
    const shown = fieldValue(rec, field);
    if (input.value.trim() === value) input.value = shown;
    input.dataset.saved = shown;
    if (tb && tb.isConnected) refreshRowParts(tb, rec);
    // A receipt already in QuickBooks is not changed by an edit here: say so, so the
    // treasurer fixes it there too instead of trusting the table.
    const q = rec.qbo || {};
    const label = FIELD_LABELS[field].toLowerCase();
    setSaveState(tb, 'saved', q.sync_status === 'sent'
      ? `Saved ${label} here only: sales receipt #${q.sales_receipt_id || ''} in QuickBooks is unchanged; change it there too.`
      : `Saved ${label}.`);
    renderTotals();
    const totalCell = $('[data-testid=records-total]');
    if (totalCell) totalCell.textContent = money(D.deposit.total);
  } catch (e) {
    delete input.dataset.pending;
    const details = e instanceof ApiFailure && Array.isArray(e.details) ? e.details : [];
    const mine = details.find((p) => p.field === field);
    showFieldError(input, err, mine ? sentence(`${FIELD_LABELS[field]} ${mine.message}`) : errorText(e));
    setSaveState(tb, 'error', 'Not saved.');
  }
}

function setSaveState(tb, state, text) {
  if (!tb) return;
  const el = $('[data-testid=save-status]', tb);
  if (!el) return;
  el.dataset.state = state;
  el.textContent = text;
}

function rowMessage(tb, text, kind = 'info', ...extra) {
  const el = tb && $('[data-testid=row-message]', tb);
  if (!el) return;
  clear(el);
  el.className = `row-message ${kind}`;
  if (text) el.append(text);
  append(el, extra);
  const noteRow = $('tr.note', tb);
  if (noteRow) noteRow.hidden = !hasNote(recordById(tb.dataset.recordId)) && !el.textContent;
}

function hasNote(r) {
  return !!(r && r.issues && r.issues.length);
}

/** One record: its main row, a row for notes (issues, messages) and a details row. */
function recordBody(r) {
  const name = recordName(r);
  const expanded = D.expanded.has(r.id);
  const tb = h('tbody', { class: 'record', 'data-record-id': r.id });
  const toggle = h('button', {
    type: 'button', class: 'icon toggle', 'aria-expanded': expanded ? 'true' : 'false',
    'aria-label': `Details of ${name}`, 'data-testid': 'toggle-details', text: expanded ? '▾' : '▸',
  });
  toggle.addEventListener('click', () => {
    const open = !D.expanded.has(r.id);
    if (open) D.expanded.add(r.id); else D.expanded.delete(r.id);
    toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
    toggle.textContent = open ? '▾' : '▸';
    $('tr.details', tb).hidden = !open;
  });
  // An organisation's row shows the organisation first, then the person who signed.
  const donor = r.payer && r.payer.organization_name
    ? [fieldInput(r, 'organization_name', { placeholder: 'Organization' }), fieldInput(r, 'name', { placeholder: 'Contact name' })]
    : [fieldInput(r, 'name', { placeholder: 'Name' })];
  const main = h('tr', { class: 'main', 'data-testid': 'record-row', 'data-record-id': r.id },
    h('td', { class: 'toggle-cell' }, toggle),
    h('td', { class: 'donor' }, donor),
    h('td', { class: 'ref' }, fieldInput(r, 'payment_ref')),
    h('td', { class: 'amount num' }, fieldInput(r, 'amount')),
    h('td', { class: 'date' }, fieldInput(r, 'payment_date', { placeholder: 'MM/DD/YYYY' })),
    h('td', { class: 'memo' }, fieldInput(r, 'memo')),
    h('td', { class: 'source', 'data-part': 'source' }),
    h('td', { class: 'match', 'data-part': 'match' }),
    h('td', { class: 'sync', 'data-part': 'sync' }),
    h('td', { class: 'actions', 'data-part': 'actions' }),
  );
  const note = h('tr', { class: 'note' },
    h('td', {}),
    h('td', { colspan: COLUMNS.length - 1 },
      h('ul', { class: 'issues', 'data-part': 'issues' }),
      h('span', { class: 'save-status', 'data-testid': 'save-status', role: 'status' }),
      h('div', { class: 'row-message', 'data-testid': 'row-message', role: 'status' })));
  const fields = ['organization_name', 'salutation', 'address_line_1', 'city', 'state', 'zip', 'email', 'phone',
    'check_date', 'postmark_date', 'deposit_date', 'deposit_method'];
  const details = h('tr', { class: 'details', hidden: !expanded },
    h('td', {}),
    h('td', { colspan: COLUMNS.length - 1 },
      h('div', { class: 'detail-grid' }, fields
        .filter((f) => !(f === 'organization_name' && r.payer && r.payer.organization_name))
        .map((f) => fieldInput(r, f, { label: FIELD_LABELS[f], id: `f-${r.id}-${f}`, placeholder: DATE_FIELDS.has(f) ? 'MM/DD/YYYY' : undefined }))),
      h('div', { 'data-part': 'details-extra' })));
  tb.append(main, note, details);
  refreshRowParts(tb, r);
  return tb;
}

/** Re-renders what is not an input: badges, actions, notes, and inputs not being edited. */
function refreshRowParts(tb, r) {
  const name = recordName(r);
  const main = $('tr.main', tb);
  main.dataset.donor = [r.payer && r.payer.organization_name, ...((r.payer && r.payer.aliases) || [])].filter(Boolean).join(' | ');
  main.dataset.match = (r.qbo && r.qbo.match_status) || 'unmatched';
  main.dataset.sync = (r.qbo && r.qbo.sync_status) || 'not_sent';
  for (const input of $$('input[data-field]', tb)) {
    if (input === document.activeElement || input.dataset.pending !== undefined) continue;
    if (input.getAttribute('aria-invalid') === 'true') continue;
    const v = fieldValue(r, input.dataset.field);
    input.value = v;
    input.dataset.saved = v;
  }
  // Source and merge history.
  const src = $('[data-part=source]', tb);
  clear(src).append(h('span', { class: 'source-text', text: sourceText(r.provenance) }));
  if (r.merge_history && r.merge_history.length) {
    const b = h('button', { type: 'button', class: 'badge-button', 'data-testid': 'merged-badge', 'aria-label': `Merged from ${plural(r.merge_history.length, 'other source', 'other sources')}: show history`, text: `Merged ×${r.merge_history.length}` });
    b.addEventListener('click', () => openDetails(tb, r.id));
    src.append(' ', b);
  }
  // Match status.
  const q = r.qbo || {};
  const [label, kind] = MATCH[q.match_status] || MATCH.unmatched;
  const match = $('[data-part=match]', tb);
  clear(match).append(h('span', { class: `badge ${kind}`, 'data-testid': 'match-badge', text: label }));
  if (q.display_name && q.customer_id) {
    match.append(h('span', { class: 'customer', 'data-testid': 'customer-name' },
      q.match_status === 'needs_review' ? 'Suggested: ' : '→ ', q.display_name,
      q.match_status === 'needs_review' && q.match_score ? ` (${q.match_score}%)` : ''));
  }
  // QuickBooks status.
  const sync = $('[data-part=sync]', tb);
  clear(sync);
  if (q.sync_status === 'sent') {
    sync.append(h('span', { class: 'badge ok', 'data-testid': 'sync-badge', text: `Sent #${q.sales_receipt_id || ''}` }));
  } else if (q.sync_status === 'error') {
    sync.append(h('span', { class: 'badge danger', 'data-testid': 'sync-badge', text: 'Error' }),
      h('span', { class: 'sync-error', 'data-testid': 'sync-error', text: sentence(q.last_error || '') }));
  } else {
    sync.append(h('span', { class: 'badge muted', 'data-testid': 'sync-badge', text: 'Not sent' }));
  }
  // Actions.
  const actions = $('[data-part=actions]', tb);
  append(clear(actions), [rowActions(tb, r, name)]);
  // Issues.
  const issues = $('[data-part=issues]', tb);
  append(clear(issues), (r.issues || []).map((i) => h('li', { class: i.level === 'error' ? 'issue error' : 'issue warning' },
    h('span', { class: 'visually-hidden', text: i.level === 'error' ? 'Problem: ' : 'Warning: ' }), sentence(i.message))));
  const msg = $('[data-testid=row-message]', tb);
  $('tr.note', tb).hidden = !hasNote(r) && !(msg && msg.textContent);
  // Details: address review and merge history.
  const extra = $('[data-part=details-extra]', tb);
  clear(extra);
  if (q.match_status === 'address_changed' && qbo.usable) {
    extra.append(addressReview(tb, r));
  }
  const c = r.contact || {};
  if (qbo.usable && q.customer_id && (q.match_status === 'matched' || q.match_status === 'address_changed') && (c.email || c.phone)) {
    extra.append(h('div', { class: 'buttons' },
      actionButton('Add this email/phone to the QuickBooks customer', 'add-contact', (b) => addContact(tb, r, b), 'secondary'),
      h('span', { class: 'muted', text: 'Only fills what QuickBooks lacks; never overwrites.' })));
  }
  if (r.merge_history && r.merge_history.length) {
    extra.append(h('div', { class: 'history', 'data-testid': 'merge-history' },
      h('h3', { text: 'Merged from' }),
      h('ul', {}, r.merge_history.map((m) => h('li', {},
        `${sourceText(m.source)}${m.payment_ref ? `, ref ${m.payment_ref}` : ''}${m.amount ? `, ${money(m.amount)}` : ''}`,
        m.fields && m.fields.length ? ` — took ${m.fields.join(', ')}` : '',
        m.merged_at ? ` (${new Date(m.merged_at).toLocaleString('en-US')})` : '')))));
  }
  if (r.payment_method) {
    extra.append(h('p', { class: 'muted', text: `Payment: ${{ handwritten_check: 'handwritten check', printed_check: 'printed check', online: 'online' }[r.payment_method] || r.payment_method}` }));
  }
}

function openDetails(tb, id) {
  D.expanded.add(id);
  const toggle = $('button.toggle', tb);
  toggle.setAttribute('aria-expanded', 'true');
  toggle.textContent = '▾';
  $('tr.details', tb).hidden = false;
}

function addressLines(a) {
  const line2 = [a.city, [a.state, a.zip].filter(Boolean).join(' ')].filter(Boolean).join(', ');
  return [a.line1 || a.address_line_1 || '', line2].filter(Boolean);
}

function addressReview(tb, r) {
  const old = r.qbo.address_snapshot || {};
  const c = r.contact || {};
  const now = { line1: c.address_line_1, city: c.city, state: c.state, zip: c.zip };
  const block = (title, a) => h('div', { class: 'address' }, h('h4', { text: title }),
    addressLines(a).length ? addressLines(a).map((l) => h('div', { text: l })) : h('div', { class: 'muted', text: '(no address)' }));
  return h('div', { class: 'address-review', 'data-testid': 'address-review' },
    h('h3', { text: 'The address differs from QuickBooks' }),
    h('div', { class: 'side-by-side' }, block('In QuickBooks now', old), block('On this donation', now)),
    h('div', { class: 'buttons' },
      actionButton('Use the new address', 'accept-address', (b) => recordAction(tb, r, b, 'POST', 'address', 'The new address is saved in QuickBooks.')),
      actionButton('Keep the QuickBooks address', 'keep-address', (b) => recordAction(tb, r, b, 'DELETE', 'address', 'QuickBooks keeps its address.'), 'secondary')));
}

function actionButton(text, testid, fn, cls = '') {
  const b = h('button', { type: 'button', class: `small ${cls}`, 'data-testid': testid, text });
  b.addEventListener('click', () => fn(b));
  return b;
}

function rowActions(tb, r, name) {
  const q = r.qbo || {};
  const out = [];
  const sent = q.sync_status === 'sent';
  if (qbo.usable && !sent) {
    const st = q.match_status;
    if (st === 'needs_review' && q.customer_id) {
      const confirm = actionButton('Confirm', 'confirm-match', (b) => matchCustomer(tb, r, q.customer_id, b));
      confirm.setAttribute('aria-label', `Confirm ${q.display_name || 'the suggested customer'} as the donor of this row`);
      out.push(confirm);
    }
    if (st === 'matched' || st === 'address_changed') {
      out.push(actionButton('Send', 'send-row', (b) => sendRow(tb, r, b)));
    }
    if (st === 'address_changed') {
      out.push(actionButton('Review address', 'review-address', () => {
        openDetails(tb, r.id);
        const first = $('[data-testid=accept-address]', tb);
        if (first) first.focus();
      }, 'secondary'));
    }
    out.push(actionButton(st === 'matched' || st === 'address_changed' ? 'Change donor' : 'Find customer', 'find-customer', () => openDonorDialog(r.id), 'secondary'));
    if (st !== 'matched' && st !== 'address_changed') {
      out.push(actionButton('Create customer', 'create-customer', (b) => createCustomer(tb, r, b), 'secondary'));
    }
    if (q.customer_id && (st === 'matched' || st === 'address_changed')) {
      out.push(actionButton('Unmatch', 'unmatch', (b) => recordAction(tb, r, b, 'DELETE', 'match', 'The match was undone.'), 'secondary'));
    }
  }
  if (!sent) {
    const del = actionButton('Delete', 'delete-row', (b) => {
      if (b.dataset.confirm !== '1') {
        b.dataset.confirm = '1';
        b.textContent = 'Really delete?';
        b.classList.add('danger');
        setTimeout(() => {
          if (b.isConnected) {
            b.dataset.confirm = '';
            b.textContent = 'Delete';
            b.classList.remove('danger');
          }
        }, 5000);
        return;
      }
      deleteRow(tb, r, b);
    }, 'secondary');
    del.setAttribute('aria-label', `Delete the row of ${name}`);
    out.push(del);
  }
  return out;
}

async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

/** Re-renders one record from the server's answer, keeping the focus near where it was. */
function showRecord(rec, message, kind = 'ok') {
  replaceRecord(rec);
  const tb = $(`tbody.record[data-record-id="${rec.id}"]`);
  if (!tb) return;
  const fresh = recordBody(rec);
  tb.replaceWith(fresh);
  if (message) rowMessage(fresh, message, kind);
  renderTotals();
  const focus = $('[data-testid=send-row]', fresh) || $('button.toggle', fresh);
  if (focus && document.activeElement === document.body) focus.focus();
}

async function recordAction(tb, r, button, method, what, okText) {
  await busy(button, async () => {
    try {
      const rec = await api(method, `/api/deposits/${D.id}/records/${r.id}/${what}`);
      showRecord(rec, okText);
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

async function matchCustomer(tb, r, customerId, button) {
  return busy(button, async () => {
    try {
      const rec = await api('POST', `/api/deposits/${D.id}/records/${r.id}/match`, { customer_id: customerId });
      showRecord(rec, `Matched to ${rec.qbo.display_name || 'the customer'}.`);
      return true;
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
      return false;
    }
  });
}

async function createCustomer(tb, r, button, displayName) {
  await busy(button, async () => {
    try {
      const body = displayName ? { display_name: displayName } : {};
      const res = await api('POST', `/api/deposits/${D.id}/records/${r.id}/customer`, body);
      const c = res.result && res.result.customer;
      showRecord(res.record, `Created the customer ${c ? c.display_name : ''} in QuickBooks.`);
    } catch (e) {
      if (e instanceof ApiFailure && e.code === 'qbo_duplicate_name') {
        const existing = e.details && e.details.existing;
        const nameInput = h('input', { type: 'text', id: `newname-${r.id}`, value: `${recordName(r)} (2)` });
        const extra = [];
        if (existing && existing.id) {
          extra.push(actionButton(`Match ${existing.display_name}`, 'match-existing', (b) => matchCustomer(tb, r, existing.id, b)));
        }
        extra.push(h('span', { class: 'inline-form' },
          h('label', { for: nameInput.id, text: 'Another name' }), nameInput,
          actionButton('Create with this name', 'create-other-name', (b) => createCustomer(tb, r, b, nameInput.value.trim()))));
        rowMessage(tb, e.message, 'error', ' ', extra);
      } else {
        rowMessage(tb, errorText(e), 'error');
      }
    }
  });
}

async function addContact(tb, r, button) {
  await busy(button, async () => {
    try {
      const res = await api('POST', `/api/deposits/${D.id}/records/${r.id}/contact`);
      const added = (res && res.added) || [];
      rowMessage(tb, added.length ? 'QuickBooks now has this email or phone.' : 'QuickBooks already has an email and phone for this customer; nothing was changed.', 'ok');
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

async function deleteRow(tb, r, button) {
  await busy(button, async () => {
    try {
      await api('DELETE', `/api/deposits/${D.id}/records/${r.id}`);
      D.deposit.records = D.deposit.records.filter((x) => x.id !== r.id);
      replaceRecord({ id: '' });
      notice(`Deleted the row of ${recordName(r)}.`, 'info');
      renderRecords();
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

const OUTCOMES = {
  sent: 'Sent',
  found_existing: 'Already in QuickBooks',
  already_sent: 'Already sent',
  refused: 'Not sent',
  error: 'Error',
};

async function sendRow(tb, r, button) {
  await busy(button, async () => {
    rowMessage(tb, 'Sending to QuickBooks…', 'info');
    try {
      const res = await api('POST', `/api/deposits/${D.id}/records/${r.id}/send`);
      await refreshOne(r.id);
      const fresh = $(`tbody.record[data-record-id="${r.id}"]`);
      rowMessage(fresh, resultText(res), res.outcome === 'sent' || res.outcome === 'found_existing' || res.outcome === 'already_sent' ? 'ok' : 'error');
    } catch (e) {
      await refreshOne(r.id);
      rowMessage($(`tbody.record[data-record-id="${r.id}"]`), errorText(e), 'error');
    }
  });
}

function resultText(res) {
  const label = OUTCOMES[res.outcome] || res.outcome;
  if (res.receipt_id) return `${label}: sales receipt #${res.receipt_id}.`;
  return `${label}: ${sentence(res.message || '')}`;
}

async function refreshOne(id) {
  try {
    const d = await api('GET', `/api/deposits/${D.id}`);
    D.deposit = d;
    const rec = d.records.find((x) => x.id === id);
    if (rec) showRecord(rec);
    renderTotals();
  } catch (e) {
    notice(errorText(e), 'error');
  }
}

// ---- donor search dialog --------------------------------------------------------------------

function openDonorDialog(recordId) {
  const r = recordById(recordId);
  if (!r) return;
  const dlg = $('#donor-dialog');
  const name = recordName(r);
  const c = r.contact || {};
  const q = h('input', { type: 'search', id: 'donor-q', 'data-testid': 'customer-search', value: name, autocomplete: 'off' });
  const status = h('p', { class: 'dialog-status', role: 'status', 'data-testid': 'customer-search-status' });
  const results = h('ul', { class: 'customer-results', 'data-testid': 'customer-results' });
  let timer = 0;
  let seq = 0;
  const search = async () => {
    const term = q.value.trim();
    const mine = ++seq;
    if (!term) {
      clear(results);
      status.textContent = 'Type a name, company, email or phone.';
      return;
    }
    status.textContent = 'Searching…';
    try {
      const { customers } = await api('GET', `/api/qbo/customers?q=${encodeURIComponent(term)}`);
      if (mine !== seq) return;
      clear(results);
      status.textContent = customers.length ? `${plural(customers.length, 'customer', 'customers')} found.` : 'No QuickBooks customer matches. Try another spelling, or create a new customer.';
      for (const cu of customers) {
        const addr = addressLines(cu.address || {}).join(', ');
        const b = h('button', { type: 'button', class: 'customer-result', 'data-testid': 'customer-result', 'data-customer-id': cu.id },
          h('strong', { text: cu.display_name }),
          cu.company_name && cu.company_name !== cu.display_name ? h('span', { text: ` · ${cu.company_name}` }) : null,
          h('span', { class: 'muted', text: addr ? ` · ${addr}` : ' · no address on file' }),
          cu.email ? h('span', { class: 'muted', text: ` · ${cu.email}` }) : null,
          cu.active === false ? h('span', { class: 'badge muted', text: 'inactive' }) : null);
        b.addEventListener('click', async () => {
          const tb = $(`tbody.record[data-record-id="${r.id}"]`);
          status.textContent = `Matching to ${cu.display_name}…`;
          const ok = await matchCustomer(tb, r, cu.id, b);
          if (ok) {
            dlg.close();
          } else {
            status.textContent = $('[data-testid=row-message]', tb)?.textContent || 'The match did not work.';
          }
        });
        results.append(h('li', {}, b));
      }
    } catch (e) {
      if (mine === seq) status.textContent = errorText(e);
    }
  };
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(search, 300);
  });
  const form = h('form', { class: 'search-form', role: 'search' },
    h('label', { for: 'donor-q', text: 'Search QuickBooks customers' }),
    h('div', { class: 'row' }, q, h('button', { type: 'submit', text: 'Search' })));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(timer);
    search();
  });
  const close = h('button', { type: 'button', class: 'icon close', 'aria-label': 'Close', text: '×' });
  close.addEventListener('click', () => dlg.close());
  const create = actionButton(`Create “${name}” as a new customer`, 'dialog-create-customer', async () => {
    dlg.close();
    const tb = $(`tbody.record[data-record-id="${r.id}"]`);
    await createCustomer(tb, r, null);
  }, 'secondary');
  clear(dlg).append(
    h('div', { class: 'dialog-head' }, h('h2', { id: 'donor-dialog-title', text: `Find the donor: ${name}` }), close),
    h('p', { class: 'muted', text: [money(r.amount), fmtDate(r.payment_date), c.address_line_1, c.city].filter(Boolean).join(' · ') }),
    form, status, results,
    h('div', { class: 'dialog-foot' }, create));
  dlg.addEventListener('close', () => {
    const tb = $(`tbody.record[data-record-id="${r.id}"]`);
    const back = tb && ($('[data-testid=send-row]', tb) || $('[data-testid=find-customer]', tb) || $('button.toggle', tb));
    if (back) back.focus();
  }, { once: true });
  dlg.showModal();
  q.select();
  search();
}

// ---- sending ------------------------------------------------------------------------------

function renderSendPanel(st) {
  const box = $('#send');
  clear(box);
  if (!st || !st.configured) {
    box.append(h('p', { class: 'empty', 'data-testid': 'qbo-not-set-up', text: 'QuickBooks is not set up on this server, so receipts cannot be sent from here.' }));
    return;
  }
  if (!st.connected) {
    box.append(h('p', { class: 'empty' },
      st.reconnect_needed ? 'The QuickBooks connection needs to be renewed. ' : 'QuickBooks is not connected. ',
      h('a', { href: '/qbo/connect', text: st.reconnect_needed ? 'Reconnect QuickBooks' : 'Connect QuickBooks' }),
      ' to match donors and send receipts.'));
    return;
  }
  const item = h('select', { id: 'send-item', 'data-testid': 'send-item' });
  const account = h('select', { id: 'send-account', 'data-testid': 'send-account' });
  const method = h('select', { id: 'send-method', 'data-testid': 'send-method' });
  const saved = h('span', { class: 'muted', role: 'status', 'data-testid': 'defaults-status' });
  const sendAll = h('button', { type: 'button', id: 'send-all', 'data-testid': 'send-all', text: 'Send all unsent rows' });
  const progress = h('div', { class: 'send-progress', 'data-testid': 'send-progress', hidden: true },
    h('progress', { max: 100, value: 0, id: 'send-bar', 'aria-label': 'Sending progress' }),
    h('span', { id: 'send-text', role: 'status' }));
  const results = h('div', { id: 'send-results' });
  box.append(
    h('div', { class: 'send-choices' },
      h('div', { class: 'field' }, h('label', { for: 'send-item', text: 'Item' }), item),
      h('div', { class: 'field' }, h('label', { for: 'send-account', text: 'Deposit to' }), account),
      h('div', { class: 'field' }, h('label', { for: 'send-method', text: 'Payment method (checks)' }), method),
      saved),
    h('div', { class: 'send-actions' }, sendAll, progress),
    results);
  sendAll.addEventListener('click', () => startSendAll(sendAll));
  loadSendChoices(item, account, method, saved);
}

async function loadSendChoices(item, account, method, saved) {
  for (const s of [item, account, method]) {
    s.disabled = true;
    s.append(h('option', { value: '', text: 'Loading…' }));
  }
  let lists;
  try {
    lists = await Promise.all([
      api('GET', '/api/qbo/items'),
      api('GET', '/api/qbo/accounts'),
      api('GET', '/api/qbo/payment-methods'),
      api('GET', '/api/qbo/defaults'),
    ]);
  } catch (e) {
    saved.textContent = errorText(e);
    return;
  }
  const [{ items }, { accounts }, { payment_methods: methods }, defaults] = lists;
  const fill = (sel, rows, chosen, label) => {
    clear(sel);
    sel.append(h('option', { value: '', text: `Choose…` }));
    for (const r of rows) sel.append(h('option', { value: r.Id, text: label(r), selected: r.Id === chosen }));
    sel.value = chosen || '';
    sel.disabled = false;
  };
  fill(item, items.filter((i) => i.Active !== false), defaults.item_id, (i) => i.Name);
  fill(account, accounts.filter((a) => a.Active !== false), defaults.deposit_account_id,
    (a) => (a.AccountSubType === 'UndepositedFunds' ? `${a.Name} (recommended)` : `${a.Name} · ${a.AccountType || ''}`));
  fill(method, methods.filter((m) => m.Active !== false), defaults.payment_method_id, (m) => m.Name);
  const save = async (key, sel) => {
    saved.textContent = 'Saving…';
    try {
      await api('PUT', '/api/qbo/defaults', { [key]: sel.value || null });
      saved.textContent = 'Saved: used for every row sent.';
    } catch (e) {
      saved.textContent = errorText(e);
    }
  };
  item.addEventListener('change', () => save('item_id', item));
  account.addEventListener('change', () => save('deposit_account_id', account));
  method.addEventListener('change', () => save('payment_method_id', method));
}

async function startSendAll(button) {
  button.disabled = true;
  showSendProgress(0, 0, 'Starting…');
  try {
    await api('POST', `/api/deposits/${D.id}/send`);
    pollSend();
  } catch (e) {
    button.disabled = false;
    showSendProgress(0, 0, errorText(e), true);
  }
}

function showSendProgress(done, total, text, failed = false) {
  const wrap = $('[data-testid=send-progress]');
  if (!wrap) return;
  wrap.hidden = false;
  wrap.dataset.state = failed ? 'failed' : 'running';
  const bar = $('#send-bar');
  if (total > 0) {
    bar.value = Math.round((100 * done) / total);
  } else {
    bar.removeAttribute('value');
  }
  $('#send-text').textContent = text;
}

async function resumeSend() {
  if (!qbo.usable) return;
  try {
    const s = await api('GET', `/api/deposits/${D.id}/send`);
    if (s.job && ['queued', 'running'].includes(s.job.state)) {
      $('#send-all').disabled = true;
      pollSend();
    } else if (s.results && s.results.results) {
      renderSendResults(s.results.results, false);
    }
  } catch {
    // The page works without the last send's results.
  }
}

function pollSend() {
  clearTimeout(D.sendPoll);
  const tick = async () => {
    let s;
    try {
      s = await api('GET', `/api/deposits/${D.id}/send`);
    } catch (e) {
      showSendProgress(0, 0, errorText(e), true);
      D.sendPoll = setTimeout(tick, 2000);
      return;
    }
    const job = s.job;
    if (!job) {
      D.sendPoll = setTimeout(tick, 700);
      return;
    }
    if (job.state === 'queued') {
      showSendProgress(0, 0, 'Waiting for the worker…');
    } else if (job.state === 'running') {
      const n = job.pages || 0;
      const i = Math.min(job.page || 0, n);
      showSendProgress(i, n, n ? `Sending row ${Math.min(i + 1, n)} of ${n}…` : 'Sending…');
    }
    if (['done', 'failed', 'dead'].includes(job.state)) {
      const results = (s.results && s.results.results) || [];
      const button = $('#send-all');
      if (button) button.disabled = false;
      if (job.state === 'done') {
        const n = results.length;
        showSendProgress(n, n, `Finished: ${plural(n, 'row', 'rows')} handled.`);
        $('[data-testid=send-progress]').dataset.state = 'done';
      } else {
        showSendProgress(0, 0, sentence(job.last_error || 'Sending stopped before the end; send again to continue.'), true);
      }
      renderSendResults(results, true);
      await reloadDeposit();
      return;
    }
    D.sendPoll = setTimeout(tick, 500);
  };
  tick();
}

function renderSendResults(results, fresh) {
  const box = $('#send-results');
  if (!box) return;
  clear(box);
  if (!results.length) {
    if (fresh) box.append(h('p', { class: 'empty', text: 'Nothing to send.' }));
    return;
  }
  const counts = {};
  for (const r of results) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
  const summary = Object.entries(counts).map(([k, n]) => `${n} ${(OUTCOMES[k] || k).toLowerCase()}`).join(', ');
  box.append(
    h('h3', { text: fresh ? `Results: ${summary}` : `Last send: ${summary}` }),
    h('ul', { class: 'send-results', 'data-testid': 'send-results' }, results.map((res) => {
      const rec = recordById(res.record_id);
      const ok = ['sent', 'found_existing', 'already_sent'].includes(res.outcome);
      return h('li', { class: ok ? 'ok' : 'bad', 'data-testid': 'send-result', 'data-outcome': res.outcome, 'data-record-id': res.record_id },
        h('span', { class: `badge ${ok ? 'ok' : res.outcome === 'refused' ? 'warn' : 'danger'}`, text: OUTCOMES[res.outcome] || res.outcome }), ' ',
        h('strong', { text: rec ? recordName(rec) : 'A deleted row' }),
        rec && rec.amount ? ` (${money(rec.amount)})` : '', ': ',
        res.receipt_id ? `sales receipt #${res.receipt_id}` : sentence(res.message || ''));
    })));
}

// ---- report -------------------------------------------------------------------------------

async function openReport() {
  const box = $('#report');
  const button = $('#report-open');
  if (button) button.disabled = true;
  let rep;
  try {
    rep = await api('GET', `/api/deposits/${D.id}/report`);
  } catch (e) {
    if (button) button.disabled = false;
    notice(errorText(e), 'error');
    return;
  }
  const text = h('textarea', { id: 'report-text', 'data-testid': 'report-text', rows: 18, spellcheck: 'false' });
  text.value = rep.text;
  const status = h('span', { class: 'muted', role: 'status', 'data-testid': 'report-status' });
  const copy = actionButton('Copy to clipboard', 'report-copy', async () => {
    try {
      await navigator.clipboard.writeText(text.value);
      status.textContent = 'Copied.';
    } catch {
      text.select();
      status.textContent = 'The browser did not allow copying; the text is selected, press Ctrl+C.';
    }
  });
  const txt = actionButton('Download .txt', 'report-download-txt', () => {
    const blob = new Blob([text.value], { type: 'text/plain;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `deposit-${rep.date}.txt`, class: 'visually-hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, 'secondary');
  const csv = h('a', { href: `/api/deposits/${D.id}/report.csv`, download: `deposit-${rep.date}.csv`, class: 'button secondary small', 'data-testid': 'report-download-csv', text: 'Download .csv' });
  const again = actionButton('Rebuild from the records', 'report-refresh', async () => {
    try {
      const fresh = await api('GET', `/api/deposits/${D.id}/report`);
      text.value = fresh.text;
      status.textContent = 'Rebuilt from the current records (your edits were replaced).';
    } catch (e) {
      status.textContent = errorText(e);
    }
  }, 'secondary');
  clear(box).append(
    h('label', { for: 'report-text', text: `Report for ${fmtDate(rep.date)} (edit freely before copying)` }),
    text,
    h('div', { class: 'buttons' }, copy, txt, csv, again, status));
  text.setSelectionRange(0, 0);
  text.focus();
  text.scrollTop = 0;
}

// ---- start --------------------------------------------------------------------------------

const kind = document.body.dataset.page;
if (kind === 'deposits') depositsPage();
else if (kind === 'deposit') depositPage();
