// The activity page (/audit): the audit log, newest first, with a filter by kind and
// "Older events" to page back. Read-only.

import { $, clear, h, notice } from './dom.js';
import { fmtTime, money } from './format.js';
import { api, errorText } from './api.js';
import { loadQboStatus } from './qbo.js';

const KINDS = {
  sign_in: 'Signed in',
  sign_in_failed: 'Sign-in refused',
  sign_out: 'Signed out',
  qbo_connect: 'QuickBooks connected',
  qbo_disconnect: 'QuickBooks disconnected',
  qbo_reconnect_needed: 'QuickBooks needs reconnecting',
  upload: 'File uploaded',
  record_edit: 'Row edited',
  record_deleted: 'Row deleted',
  customer_created: 'Donor created in QuickBooks',
  customer_updated: 'Donor updated in QuickBooks',
  receipt_created: 'Receipt created',
  receipt_found_existing: 'Receipt found already in QuickBooks',
  receipt_updated: 'Receipt updated',
  send_all_started: 'Send all started',
  send_all_finished: 'Send all finished',
  deposit_deleted: 'Deposit deleted',
  report_downloaded: 'Report downloaded',
  columns_chosen: 'CSV columns chosen',
  receipt_layout_changed: 'Receipt layout changed',
  bank_deposit_recorded: 'Bank deposit recorded',
  source_attached: 'Scan attached to a receipt',
  legal_text_changed: 'Legal page text changed',
  job_retried: 'Job retried',
  jobs_purged: 'Old jobs purged',
  statement_settings_changed: 'Statement settings changed',
  statements_started: 'Year-end statements started',
};

let next = null;

export function auditPage() {
  loadQboStatus();
  const select = $('#audit-kind');
  for (const [value, label] of Object.entries(KINDS)) {
    select.append(h('option', { value, text: label }));
  }
  select.addEventListener('change', () => load(true));
  $('#audit-more').addEventListener('click', () => load(false));
  load(true);
}

/** A short, readable line of an event's details (ids shortened, amounts as money). */
function describe(e) {
  const d = e.details || {};
  const parts = [];
  if (d.file) parts.push(d.file);
  if (d.roles) parts.push(`columns: ${[].concat(d.roles).join(', ')}`);
  if (d.verdict) parts.push(d.verdict);
  if (d.fields) parts.push(`fields: ${[].concat(d.fields).join(', ')}`);
  if (d.amount) parts.push(money(d.amount));
  if (d.receipt_id) parts.push(`receipt #${d.receipt_id}`);
  if (d.rows !== undefined) parts.push(`${d.rows} rows, ${d.errors || 0} errors`);
  if (d.jobs !== undefined) parts.push(`${d.jobs} jobs older than ${d.older_than_hours} h`);
  if (d.reason) parts.push(d.reason);
  if (d.deposit_id) parts.push(h('a', { href: `/deposits/${encodeURIComponent(d.deposit_id)}`, text: 'deposit' }));
  return parts.flatMap((p, i) => (i ? [' · ', p] : [p]));
}

async function load(fresh) {
  const box = $('#audit');
  const more = $('#audit-more');
  const kind = $('#audit-kind').value;
  const q = new URLSearchParams({ limit: '50' });
  if (kind) q.set('kind', kind);
  if (!fresh && next) q.set('before', next);
  more.disabled = true;
  try {
    const page = await api('GET', `/api/audit?${q}`);
    next = page.next || null;
    let body = $('tbody', box);
    if (fresh || !body) {
      clear(box);
      if (!page.events.length) {
        box.append(h('p', { class: 'empty', 'data-testid': 'audit-empty', text: 'Nothing recorded yet.' }));
        more.hidden = true;
        return;
      }
      body = h('tbody');
      box.append(h('table', { class: 'table' },
        h('thead', {}, h('tr', {},
          h('th', { text: 'When' }), h('th', { text: 'What' }), h('th', { text: 'Details' }),
          h('th', { text: 'From' }))),
        body));
    }
    for (const e of page.events) {
      body.append(h('tr', { 'data-testid': 'audit-row', 'data-kind': e.kind },
        h('td', { text: fmtTime(e.at) }),
        h('td', { text: KINDS[e.kind] || e.kind }),
        h('td', {}, describe(e)),
        h('td', { class: 'muted', text: e.client || 'worker' })));
    }
    more.hidden = !next;
  } catch (err) {
    notice(errorText(err), 'error');
  } finally {
    more.disabled = false;
  }
}
