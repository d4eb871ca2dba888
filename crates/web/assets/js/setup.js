// Setting up what receipts refer to, from the page: when the company has no item for
// donations (or QuickBooks refuses the item, deposit account or payment method as an invalid
// reference), the treasurer chooses an existing one or creates it here; the choice is saved for
// every row and the send is tried again.

import { $, clear, h } from './dom.js';
import { sentence } from './format.js';
import { api, errorText } from './api.js';

const KINDS = {
  item: {
    label: 'item for donations', list: '/api/qbo/items', key: 'items', save: 'item_id',
    create: '/api/qbo/items', suggest: 'Donations', name: (r) => r.Name,
  },
  account: {
    label: 'deposit account', list: '/api/qbo/accounts', key: 'accounts', save: 'deposit_account_id',
    create: '/api/qbo/accounts', suggest: 'Undeposited Funds', name: (r) => r.Name,
  },
  payment_method: {
    label: 'payment method for checks', list: '/api/qbo/payment-methods', key: 'payment_methods', save: 'payment_method_id',
    create: '/api/qbo/payment-methods', suggest: 'Check', name: (r) => r.Name,
  },
};

/** Whether `kind` names something this dialog can set up. */
export function canSetUp(kind) {
  return Object.hasOwn(KINDS, kind);
}

/**
 * Opens the set-up dialog for `kind` (item, account, payment_method) with `why` (QuickBooks's
 * or our reason, or null); `done(id)` runs once one is chosen or created and saved.
 */
export async function openSetup(kind, why, done) {
  const k = KINDS[kind];
  const dlg = $('#setup-dialog');
  if (!k || !dlg) return;
  const status = h('p', { class: 'status', role: 'status', 'data-testid': 'setup-status' });
  const choose = h('select', { id: 'setup-choose', 'data-testid': 'setup-choose' }, h('option', { value: '', text: 'Loading…' }));
  const useIt = h('button', { type: 'button', 'data-testid': 'setup-use', text: 'Use this one' });
  const name = h('input', { id: 'setup-name', type: 'text', maxlength: 100, value: k.suggest, 'data-testid': 'setup-name' });
  const create = h('button', { type: 'button', class: 'secondary', 'data-testid': 'setup-create', text: `Create the ${k.label}` });
  const close = h('button', { type: 'button', class: 'icon close', 'aria-label': 'Close', text: '×' });
  close.addEventListener('click', () => dlg.close());
  const finish = async (id, label) => {
    status.textContent = 'Saving…';
    try {
      await api('PUT', '/api/qbo/defaults', { [k.save]: id });
      dlg.close();
      await done(id, label);
    } catch (e) {
      status.textContent = errorText(e);
    }
  };
  useIt.addEventListener('click', () => {
    if (!choose.value) {
      status.textContent = `Choose a ${k.label} from the list, or create one below.`;
      return;
    }
    finish(choose.value, choose.options[choose.selectedIndex].text);
  });
  create.addEventListener('click', async () => {
    const n = name.value.trim();
    if (!n) {
      status.textContent = 'Type a name first.';
      name.focus();
      return;
    }
    create.disabled = true;
    status.textContent = `Creating “${n}” in QuickBooks…`;
    try {
      const made = await api('POST', k.create, { name: n });
      await finish(made.Id, made.Name || n);
    } catch (e) {
      status.textContent = errorText(e);
    } finally {
      create.disabled = false;
    }
  });
  clear(dlg).append(
    h('div', { class: 'dialog-head' }, h('h2', { id: 'setup-dialog-title', text: `Choose the ${k.label}` }), close),
    why ? h('p', { class: 'notice warning', 'data-testid': 'setup-why', text: sentence(why) }) : null,
    h('div', { class: 'field' }, h('label', { for: 'setup-choose', text: `An existing ${k.label}` }), h('div', { class: 'row' }, choose, useIt)),
    h('div', { class: 'field' }, h('label', { for: 'setup-name', text: `Or a new one named` }), h('div', { class: 'row' }, name, create)),
    status);
  dlg.showModal();
  try {
    const data = await api('GET', k.list);
    const rows = (data[k.key] || []).filter((r) => r.Active !== false);
    clear(choose).append(h('option', { value: '', text: rows.length ? 'Choose…' : `(no ${k.label} yet)` }),
      rows.map((r) => h('option', { value: r.Id, text: k.name(r) })));
  } catch (e) {
    status.textContent = errorText(e);
  }
}
