// The settings page (/settings): the receipt layout (Description, receipt number, message) with
// a live preview of one example receipt, drawn by the server from the templates as typed.

import { $, clear, h, notice } from './dom.js';
import { api, errorText, ApiFailure } from './api.js';
import { loadQboStatus } from './qbo.js';
import { legalSettings } from './legal.js';

const TEMPLATES = ['description', 'doc_number', 'customer_memo'];
const LABELS = {
  description: 'Description',
  doc_number: 'Receipt number',
  customer_memo: 'Message',
  txn_date: 'Receipt date',
  service_date: 'Service date',
};
let usual = null;
let timer = null;
let asked = 0;

export async function settingsPage() {
  loadQboStatus();
  legalSettings();
  const form = $('#layout-form');
  let data;
  try {
    data = await api('GET', '/api/settings/receipt');
  } catch (e) {
    notice(errorText(e), 'error');
    return;
  }
  usual = data.default;
  fill(data.layout);
  const fields = $('#layout-fields');
  for (const f of data.fields) {
    fields.append(h('dt', {}, h('code', { text: `{${f.name}}` })), h('dd', { text: f.about }));
  }
  form.addEventListener('input', schedule);
  form.addEventListener('change', schedule);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api('PUT', '/api/settings/receipt', current());
      notice('Saved: the next receipts sent use this layout.', 'ok');
    } catch (e) {
      showErrors(e);
      notice(errorText(e), 'error');
    }
  });
  $('#layout-reset').addEventListener('click', () => {
    fill(usual);
    schedule();
    notice('The usual layout is filled in; press Save to use it.', 'info');
  });
  refresh();
}

function fill(layout) {
  for (const t of TEMPLATES) $(`#layout-${t}`).value = layout[t] || '';
  $('#layout-service_date').checked = !!layout.service_date;
}

function current() {
  const layout = {};
  for (const t of TEMPLATES) layout[t] = $(`#layout-${t}`).value;
  layout.service_date = $('#layout-service_date').checked;
  return layout;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 250);
}

/** Shows each template's problem under it: from a refused save, or the preview's `problems`. */
function showErrors(e) {
  for (const t of TEMPLATES) $(`#layout-${t}-error`).textContent = '';
  let problems = [];
  if (Array.isArray(e)) problems = e;
  else if (e instanceof ApiFailure && Array.isArray(e.details)) problems = e.details;
  for (const p of problems) {
    const box = $(`#layout-${p.field}-error`);
    if (box) box.textContent = p.message;
  }
}

/** Asks the server what the templates as typed make of the example check. */
async function refresh() {
  const mine = ++asked;
  const box = $('#layout-preview');
  try {
    const p = await api('POST', '/api/settings/receipt/preview', current());
    if (mine !== asked) return;
    showErrors(p.problems || null);
    if (p.problems) return;
    $('#layout-example').textContent = `For ${p.example}:`;
    clear(box);
    for (const key of ['txn_date', 'service_date', 'doc_number', 'description', 'customer_memo']) {
      const value = p[key];
      box.append(h('dt', { text: LABELS[key] }),
        h('dd', { 'data-testid': `preview-${key}`, text: value === null || value === undefined || value === '' ? '(none)' : value }));
    }
  } catch (e) {
    if (mine !== asked) return;
    showErrors(e);
  }
}
