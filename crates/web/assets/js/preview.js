// A row's receipt before it is sent: what QuickBooks will get (from the server's preview), with
// the row's own item, deposit account and payment method when the treasurer picks other ones
// than the deployment's.

import { clear, h } from './dom.js';
import { money, sentence } from './format.js';
import { api, errorText } from './api.js';
import { D } from './state.js';

/** The company's lists, loaded once per page. */
let lists = null;

function loadLists() {
  if (!lists) {
    lists = Promise.all([
      api('GET', '/api/qbo/items'),
      api('GET', '/api/qbo/accounts'),
      api('GET', '/api/qbo/payment-methods'),
    ]).then(([i, a, m]) => ({
      item_id: i.items.filter((x) => x.Active !== false),
      deposit_account_id: a.accounts.filter((x) => x.Active !== false),
      payment_method_id: m.payment_methods.filter((x) => x.Active !== false),
    })).catch((e) => {
      lists = null;
      throw e;
    });
  }
  return lists;
}

const CHOICES = [
  ['item_id', 'Item', 'item'],
  ['deposit_account_id', 'Deposit to', 'deposit_account'],
  ['payment_method_id', 'Payment method', 'payment_method'],
];

/** The "Receipt" part of a row's details: a button that shows the preview in place. */
export function receiptPreview(r) {
  const box = h('div', { class: 'receipt-preview', 'data-testid': 'receipt-preview' });
  const open = h('button', { type: 'button', class: 'small secondary', 'data-testid': 'preview-receipt', text: 'Preview the receipt' });
  open.addEventListener('click', () => show(box, r));
  box.append(open);
  return box;
}

async function show(box, r) {
  clear(box).append(h('p', { class: 'muted', role: 'status', text: 'Loading the receipt…' }));
  let p;
  let l;
  try {
    [p, l] = await Promise.all([api('GET', `/api/deposits/${D.id}/records/${r.id}/preview`), loadLists()]);
  } catch (e) {
    clear(box).append(h('p', { class: 'alert', role: 'alert', text: errorText(e) }));
    return;
  }
  const own = (p.choices && p.choices.own) || {};
  const status = h('span', { class: 'muted', role: 'status', 'data-testid': 'preview-status' });
  const selects = CHOICES.map(([key, label]) => {
    const id = `pv-${key}-${r.id}`;
    const rows = l[key];
    const current = (p.choices && p.choices[key]) || '';
    const sel = h('select', { id, 'data-testid': `preview-${key}` },
      h('option', { value: '', text: 'As for every row' }),
      rows.map((x) => h('option', { value: x.Id, text: x.Name })));
    sel.value = own[key] ? own[key] : '';
    sel.dataset.current = current;
    sel.addEventListener('change', async () => {
      const body = {};
      for (const s of box.querySelectorAll('select[data-choice]')) {
        if (s.value) body[s.dataset.choice] = s.value;
      }
      status.textContent = 'Saving…';
      try {
        await api('PUT', `/api/deposits/${D.id}/records/${r.id}/choices`, body);
        await show(box, r);
      } catch (e) {
        status.textContent = errorText(e);
      }
    });
    sel.dataset.choice = key;
    return h('div', { class: 'field inline' }, h('label', { for: id, text: label }), sel);
  });
  const rc = p.receipt || {};
  const line = (rc.Line && rc.Line[0]) || {};
  const detail = line.SalesItemLineDetail || {};
  const rows = p.ready ? [
    ['Date', rc.TxnDate],
    ['Customer', p.customer],
    ['Amount', line.Amount !== undefined ? money(String(line.Amount)) : ''],
    ['Item', p.item],
    ['Deposit to', p.deposit_account],
    ['Payment method', p.payment_method || '(none: not a check)'],
    ['Reference', rc.PaymentRefNum],
    ['Receipt number', rc.DocNumber || '(QuickBooks numbers it)'],
    ['Description', line.Description],
    ['Service date', detail.ServiceDate || '(none)'],
    ['Message', rc.CustomerMemo ? rc.CustomerMemo.value : '(none)'],
  ] : [];
  clear(box).append(...[
    h('h3', { text: 'Receipt' }),
    p.kept_out ? h('p', { class: 'notice', 'data-testid': 'preview-kept-out', text: sentence(p.kept_out) }) : null,
    p.ready
      ? h('dl', { class: 'preview', 'data-testid': 'preview-fields' }, rows.flatMap(([k, v]) => [
        h('dt', { text: k }), h('dd', { 'data-field': k, text: v === null || v === undefined || v === '' ? '-' : String(v) })]))
      : h('p', { class: 'notice warning', 'data-testid': 'preview-not-ready', text: `Not ready to send: ${sentence(p.reason || '')}` }),
    h('div', { class: 'preview-choices' }, selects, status)].filter(Boolean));
}
