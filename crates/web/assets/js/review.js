// The review table: one row per record, every field edited in place and saved on change,
// with the row's donor match, QuickBooks status, notes, details and actions.

import { $, $$, actionButton, append, busy, clear, h, notice } from './dom.js';
import { fmtAmount, fmtDate, money, plural, sentence } from './format.js';
import { checkField, DATE_FIELDS } from './validate.js';
import { api, ApiFailure, errorText } from './api.js';
import { qbo } from './qbo.js';
import { D, recordById, recordName, replaceRecord } from './state.js';
import { addContact, addressReview, createCustomer, matchCustomer, openDonorDialog, recordAction } from './donors.js';
import { sendRow } from './sending.js';
import { reloadDeposit } from './deposit.js';
import { receiptPreview } from './preview.js';

const MATCH = {
  matched: ['Matched', 'ok'],
  address_changed: ['Address changed', 'warn'],
  needs_review: ['Needs review', 'warn'],
  new_donor: ['New donor', 'info'],
  unmatched: ['Not matched', 'muted'],
};

const COLUMNS = ['', 'Donor', 'Check / ref', 'Amount', 'Date', 'Memo', 'Source', 'Donor match', 'QuickBooks', 'Actions'];

function sourceText(src) {
  if (!src) return '';
  let s = src.file || '';
  if (src.pages && src.pages.length) s += ` p. ${src.pages.join(', ')}`;
  else if (src.line) s += ` line ${src.line}`;
  return s;
}

export function renderRecords() {
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

export function renderTotals() {
  const d = D.deposit;
  const el = $('#totals');
  if (!el || !d) return;
  const sent = d.records.filter((r) => r.qbo && r.qbo.sync_status === 'sent').length;
  el.textContent = d.records.length
    ? `${plural(d.records.length, 'record', 'records')} · ${money(d.total)} · ${sent.toLocaleString('en-US')} sent · ${(d.records.length - sent).toLocaleString('en-US')} not sent`
    : '';
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

/** Which editor a reading warning's field points at (illegible, low confidence, differing). */
const FLAGGED_BY = {
  amount: 'amount', payment_ref: 'payment_ref', payer: 'name', payment_date: 'payment_date',
  check_date: 'payment_date', postmark_date: 'payment_date',
};

const FIELD_LABELS = {
  name: 'Donor name', organization_name: 'Organization', salutation: 'Salutation', payment_ref: 'Check number or reference',
  amount: 'Amount', payment_date: 'Date', check_date: 'Check date', postmark_date: 'Postmark date',
  deposit_date: 'Deposit date', deposit_method: 'Deposit method', payment_method: 'Payment method', memo: 'Memo', address_line_1: 'Address',
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

export function rowMessage(tb, text, kind = 'info', ...extra) {
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
  const keptOut = keptOutWhy(r);
  const unsentDuplicate = r.qbo && r.qbo.duplicate && !r.qbo.duplicate_ok && r.qbo.sync_status !== 'sent' && !keptOut;
  main.dataset.sync = keptOut ? 'kept_out' : unsentDuplicate ? 'duplicate' : (r.qbo && r.qbo.sync_status) || 'not_sent';
  for (const input of $$('input[data-field]', tb)) {
    if (input === document.activeElement || input.dataset.pending !== undefined) continue;
    if (input.getAttribute('aria-invalid') === 'true') continue;
    const v = fieldValue(r, input.dataset.field);
    input.value = v;
    input.dataset.saved = v;
  }
  // A field the paper made hard to read is marked, with the reason on hover and for readers.
  for (const input of $$('input[data-field]', tb)) {
    const doubt = (r.issues || []).find((i) => i.level === 'warning' && FLAGGED_BY[i.field] === input.dataset.field);
    input.classList.toggle('doubtful', !!doubt);
    if (doubt) {
      input.title = sentence(doubt.message);
      input.setAttribute('aria-description', sentence(doubt.message));
    } else {
      input.removeAttribute('title');
      input.removeAttribute('aria-description');
    }
  }
  // Source and merge history.
  const src = $('[data-part=source]', tb);
  clear(src).append(h('span', { class: 'source-text', text: sourceText(r.provenance) }));
  if (r.edited && r.edited.length) {
    src.append(' ', h('span', { class: 'badge muted', 'data-testid': 'edited-badge', title: `Changed by hand: ${r.edited.map((f) => FIELD_LABELS[f] || f).join(', ')}`, text: 'Edited' }));
  }
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
    const how = { email: 'by e-mail', phone: 'by phone', hand: 'chosen by hand' }[q.match_by];
    if (how) match.append(h('span', { class: 'match-by muted', 'data-testid': 'match-by', 'data-by': q.match_by, text: how }));
  }
  // QuickBooks status.
  const sync = $('[data-part=sync]', tb);
  clear(sync);
  if (q.sync_status === 'sent') {
    sync.append(h('span', { class: 'badge ok', 'data-testid': 'sync-badge', text: `Sent #${q.sales_receipt_id || ''}` }));
    if (q.receipt_outdated) {
      sync.append(h('span', { class: 'badge warn', 'data-testid': 'receipt-outdated', title: 'The row was edited after its receipt was made', text: 'Receipt out of date' }));
    }
    if (q.attachment_id) {
      sync.append(h('span', { class: 'badge muted', 'data-testid': 'scan-attached', title: 'The scan is attached to the receipt in QuickBooks', text: 'Scan attached' }));
    }
  } else if (q.sync_status === 'error') {
    sync.append(h('span', { class: 'badge danger', 'data-testid': 'sync-badge', text: 'Error' }),
      h('span', { class: 'sync-error', 'data-testid': 'sync-error', text: sentence(q.last_error || '') }));
  } else if (q.duplicate && !q.duplicate_ok && !keptOut) {
    sync.append(h('span', { class: 'badge warn', 'data-testid': 'sync-badge', text: 'Duplicate?' }),
      h('span', { class: 'kept-out', 'data-testid': 'duplicate-reason', text: sentence(q.duplicate.message) }));
  } else if (keptOut) {
    sync.append(h('span', { class: 'badge muted', 'data-testid': 'sync-badge', title: sentence(keptOut.message), text: 'Kept out' }),
      h('span', { class: 'kept-out', 'data-testid': 'kept-out-reason', 'data-by': keptOut.by, title: sentence(keptOut.message),
        text: keptOut.by === 'online' ? 'Online gift: in the report only' : 'Kept out by you' }));
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
  extra.append(methodChooser(tb, r));
  if (qbo.usable && q.sync_status !== 'sent') extra.append(receiptPreview(r));
}

const METHODS = [
  ['check', 'Check'],
  ['handwritten_check', 'Check (handwritten)'],
  ['printed_check', 'Check (printed)'],
  ['money_order', 'Money order'],
  ['online', 'Online'],
];

/** The payment method: a check gets QuickBooks' check payment method when sent. */
function methodChooser(tb, r) {
  const id = `method-${r.id}`;
  const sel = h('select', { id, 'data-testid': 'field-payment_method' },
    r.payment_method ? null : h('option', { value: '', text: '(not known)' }),
    METHODS.map(([value, label]) => h('option', { value, text: label })));
  sel.value = r.payment_method || '';
  sel.addEventListener('change', async () => {
    setSaveState(tb, 'saving', 'Saving…');
    try {
      const rec = await api('PATCH', `/api/deposits/${D.id}/records/${r.id}`, { payment_method: sel.value || null });
      replaceRecord(rec);
      if (tb.isConnected) refreshRowParts(tb, rec);
      setSaveState(tb, 'saved', 'Saved payment method.');
    } catch (e) {
      sel.value = r.payment_method || '';
      setSaveState(tb, 'error', errorText(e));
    }
  });
  return h('div', { class: 'field inline' }, h('label', { for: id, text: 'Payment method' }), sel);
}

function openDetails(tb, id) {
  D.expanded.add(id);
  const toggle = $('button.toggle', tb);
  toggle.setAttribute('aria-expanded', 'true');
  toggle.textContent = '▾';
  $('tr.details', tb).hidden = false;
}

/** Why the row stays out of QuickBooks (the deposit's answer), or null. */
function keptOutWhy(r) {
  const map = (D.deposit && D.deposit.kept_out) || {};
  return map[r.id] || null;
}

/** The treasurer looked at the possible duplicate: the row is sent like any other. */
async function sendAnyway(tb, r, button) {
  await busy(button, async () => {
    try {
      const rec = await api('PATCH', `/api/deposits/${D.id}/records/${r.id}`, { duplicate_ok: true });
      replaceRecord(rec);
      if (tb.isConnected) refreshRowParts(tb, rec);
      rowMessage(tb, 'Not a duplicate: this row will be sent.', 'ok');
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

/** Brings the row's receipt in QuickBooks in line with the edited row. */
async function updateReceipt(tb, r, button) {
  await busy(button, async () => {
    try {
      const rec = await api('POST', `/api/deposits/${D.id}/records/${r.id}/receipt`);
      replaceRecord(rec);
      if (tb.isConnected) refreshRowParts(tb, rec);
      rowMessage(tb, `Receipt #${rec.qbo.sales_receipt_id} updated in QuickBooks.`, 'ok');
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

/** The treasurer keeps a row out of QuickBooks, or sends it after all. */
async function setKeepOut(tb, r, keep, button) {
  await busy(button, async () => {
    try {
      await api('PATCH', `/api/deposits/${D.id}/records/${r.id}`, { keep_out: keep });
      await reloadDeposit();
      notice(keep ? `${recordName(r)}: kept out of QuickBooks; it stays in the report.` : `${recordName(r)}: will be sent to QuickBooks.`, 'info');
    } catch (e) {
      setSaveState(tb, 'error', errorText(e));
    }
  });
}

function rowActions(tb, r, name) {
  const q = r.qbo || {};
  const out = [];
  const sent = q.sync_status === 'sent';
  const keptOut = !sent && keptOutWhy(r);
  if (qbo.usable && sent && q.receipt_outdated) {
    const up = actionButton('Update the receipt', 'update-receipt', (b) => updateReceipt(tb, r, b));
    up.setAttribute('aria-label', `Update ${name}'s receipt in QuickBooks to match the row`);
    out.push(up);
  }
  if (qbo.usable && !sent) {
    const st = q.match_status;
    if (st === 'needs_review' && q.customer_id) {
      const confirm = actionButton('Confirm', 'confirm-match', (b) => matchCustomer(tb, r, q.customer_id, b));
      confirm.setAttribute('aria-label', `Confirm ${q.display_name || 'the suggested customer'} as the donor of this row`);
      out.push(confirm);
    }
    if ((st === 'matched' || st === 'address_changed') && !keptOut) {
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
      // A match made by hand goes back to the automatic one; an automatic one is undone.
      const byHand = q.match_by === 'hand';
      const undo = actionButton(byHand ? 'Back to automatic' : 'Unmatch', 'unmatch',
        (b) => recordAction(tb, r, b, 'DELETE', 'match', byHand ? 'Back to the automatic match.' : 'The match was undone.'), 'secondary');
      undo.setAttribute('aria-label', byHand ? `Undo the donor chosen by hand for ${name}` : `Undo the match of ${name}`);
      out.push(undo);
    }
    if (q.duplicate && !q.duplicate_ok && !keptOut) {
      const anyway = actionButton('Send anyway', 'duplicate-send', (btn) => sendAnyway(tb, r, btn), 'secondary');
      anyway.setAttribute('aria-label', `${name} is not a duplicate: send it anyway`);
      out.push(anyway);
    }
    if (keptOut) {
      const b = actionButton('Send to QuickBooks', 'keep-in', (btn) => setKeepOut(tb, r, false, btn), 'secondary');
      b.setAttribute('aria-label', `Send ${name} to QuickBooks after all`);
      out.push(b);
    } else {
      const keep = actionButton('Keep out', 'keep-out', (b) => setKeepOut(tb, r, true, b), 'secondary');
      keep.setAttribute('aria-label', `Keep ${name} out of QuickBooks (it stays in the report)`);
      out.push(keep);
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

/** Re-renders one record from the server's answer, keeping the focus near where it was. */
export function showRecord(rec, message, kind = 'ok') {
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
