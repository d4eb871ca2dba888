// A CSV file's row: how it was read ("Read as: Stripe payments export"), what was skipped
// (listed on demand), and the column chooser for a layout no profile knows. Choices are kept
// per header, so the next export of the same kind is read without asking.

import { $, clear, h, notice } from './dom.js';
import { api, errorText } from './api.js';
import { D } from './state.js';
import { reloadDeposit } from './deposit.js';
import { watchProgress } from './upload.js';

const ROLES = [
  ['', '(not used)'],
  ['amount', 'Amount'],
  ['date', 'Date'],
  ['name', 'Donor name'],
  ['first_name', 'First name'],
  ['last_name', 'Last name'],
  ['organization', 'Organization'],
  ['check_number', 'Check number'],
  ['reference', 'Reference or transaction id'],
  ['email', 'Email'],
  ['phone', 'Phone'],
  ['address', 'Street address'],
  ['city', 'City'],
  ['state', 'State'],
  ['zip', 'ZIP code'],
  ['memo', 'Memo'],
  ['currency', 'Currency'],
  ['status', 'Status'],
  ['type', 'Type'],
  ['method', 'Payment method'],
  ['refunded_amount', 'Amount refunded'],
  ['refunded', 'Refunded (yes/no)'],
  ['anonymous', 'Anonymous (yes/no)'],
  ['match_amount', 'Employer match'],
  ['employer', 'Employer'],
];

const REASONS = {
  failed: 'failed payment',
  refunded: 'refund',
  reversed: 'reversal',
  pending: 'pending payment',
  withdrawal: 'withdrawal',
  transfer: 'transfer',
  fee: 'fee',
  currency_conversion: 'currency conversion',
  not_positive: 'zero or negative amount',
  no_amount: 'no amount',
  totals: 'totals line',
  summary: 'summary line',
  blank: 'blank line',
  preamble: 'before the header',
};

/** The parts a CSV file's row adds: what it was read as, what was skipped, the chooser. */
export function csvParts(f) {
  const c = f.csv;
  if (!c || !c.layout) return [];
  const parts = [];
  if (!c.needs_columns) {
    parts.push(h('span', { class: 'file-note', 'data-testid': 'file-read-as', 'data-read-by': c.layout.read_by },
      `Read as: ${c.layout.label} · ${c.sentence}`));
  }
  const pending = (c.skipped || {}).pending || 0;
  if (pending && f.state === 'done') {
    const keep = !!(D.deposit && D.deposit.options && D.deposit.options.keep_pending);
    parts.push(h('span', { class: 'file-note', 'data-testid': 'file-pending-note' },
      `${pending === 1 ? '1 pending payment was' : `${pending} pending payments were`} skipped.`,
      keep
        ? [' ', h('button', { type: 'button', class: 'small secondary', 'data-testid': 'file-reread', onclick: (ev) => readAgain(f, ev.currentTarget), text: 'Read the file again with them' })]
        : ' Tick “Also read pending payments” to read them too.'));
  }
  const listed = (c.skipped_lines || []).filter((s) => s.reason !== 'blank');
  if (listed.length) {
    parts.push(h('details', { class: 'file-skips', 'data-testid': 'file-skips' },
      h('summary', { text: `Show the ${listed.length === 1 ? 'skipped line' : `${listed.length} skipped lines`}` }),
      h('ul', {}, listed.map((s) => h('li', {},
        `line ${s.line}${s.last_line > s.line ? `-${s.last_line}` : ''}: ${REASONS[s.reason] || s.reason}${s.what ? ` (${s.what})` : ''}`)))));
  }
  // Read by names alone (or by earlier choices): the treasurer may check the columns; not
  // recognised: the treasurer must choose them.
  if (c.needs_columns || c.layout.read_by === 'columns' || c.layout.read_by === 'mapping') {
    parts.push(h('button', { type: 'button', class: c.needs_columns ? 'small' : 'small secondary', 'data-testid': 'choose-columns',
      onclick: () => openChooser(f), text: c.needs_columns ? 'Choose columns' : 'Check columns' }));
  }
  return parts;
}

async function readAgain(f, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/deposits/${D.id}/files/${encodeURIComponent(f.id)}/reread`);
    notice(`Reading ${f.name} again; its rows are replaced.`, 'info');
    await reloadDeposit();
    watchProgress();
  } catch (e) {
    button.disabled = false;
    notice(errorText(e), 'error');
  }
}

function openChooser(f) {
  const layout = f.csv.layout;
  const dlg = $('#columns-dialog');
  const selects = layout.columns.map((col, i) => {
    const sel = h('select', { 'aria-label': `What “${col || `column ${i + 1}`}” holds`, 'data-column': String(i), 'data-testid': 'column-role' },
      ROLES.map(([value, label]) => h('option', { value, text: label })));
    sel.value = (layout.roles && layout.roles[i]) || '';
    return sel;
  });
  const status = h('p', { class: 'dialog-status', role: 'status' });
  const table = h('div', { class: 'table-scroll' }, h('table', { class: 'table preview' },
    h('thead', {},
      h('tr', {}, layout.columns.map((col, i) => h('th', { scope: 'col', text: col || `column ${i + 1}` }))),
      h('tr', {}, selects.map((s) => h('td', {}, s)))),
    h('tbody', {}, (layout.preview || []).map((row) => h('tr', {}, layout.columns.map((_, i) => h('td', { text: row[i] || '' })))))));
  const save = h('button', { type: 'submit', 'data-testid': 'columns-save', text: f.csv.needs_columns ? 'Save and read the file' : 'Save for files like this' });
  const close = h('button', { type: 'button', class: 'icon close', 'aria-label': 'Close', text: '×' });
  close.addEventListener('click', () => dlg.close());
  const form = h('form', {}, table, status, h('div', { class: 'dialog-foot' }, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    status.textContent = 'Saving…';
    try {
      const res = await api('POST', `/api/deposits/${D.id}/files/${encodeURIComponent(f.id)}/columns`,
        { roles: selects.map((s) => s.value || null) });
      dlg.close();
      notice(res.reread
        ? `Reading ${f.name} with these columns.`
        : `Saved: the next file with these columns will be read this way${res.why ? `; ${res.why}` : ''}.`, 'info');
      await reloadDeposit();
      if (res.reread) watchProgress();
    } catch (e) {
      save.disabled = false;
      status.textContent = errorText(e);
    }
  });
  clear(dlg).append(
    h('div', { class: 'dialog-head' }, h('h2', { id: 'columns-dialog-title', text: `Which column holds what? ${f.name}` }), close),
    h('p', { class: 'muted', text: 'Choose at least the amount, and the donor’s name or a check number. Files with the same columns are read this way from now on.' }),
    form);
  dlg.showModal();
  if (selects[0]) selects[0].focus();
}
