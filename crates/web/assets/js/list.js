// The deposits list (/): the table of deposits and the New deposit form.

import { $, clear, h, notice } from './dom.js';
import { fmtTime, money } from './format.js';
import { api, errorText } from './api.js';
import { loadQboStatus } from './qbo.js';

export async function depositsPage() {
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
