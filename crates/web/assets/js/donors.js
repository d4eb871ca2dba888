// Fixing donors: the customer search dialog, matching or unmatching a row, creating a
// customer, a changed address (use it or keep QuickBooks's) and adding contact details.

import { $, actionButton, append, busy, clear, h } from './dom.js';
import { fmtDate, money, plural } from './format.js';
import { api, ApiFailure, errorText } from './api.js';
import { D, recordById, recordName } from './state.js';
import { rowMessage, showRecord } from './review.js';

function addressLines(a) {
  const line2 = [a.city, [a.state, a.zip].filter(Boolean).join(' ')].filter(Boolean).join(', ');
  return [a.line1 || a.address_line_1 || '', line2].filter(Boolean);
}

export function addressReview(tb, r) {
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

export async function recordAction(tb, r, button, method, what, okText) {
  await busy(button, async () => {
    try {
      const rec = await api(method, `/api/deposits/${D.id}/records/${r.id}/${what}`);
      showRecord(rec, okText);
    } catch (e) {
      rowMessage(tb, errorText(e), 'error');
    }
  });
}

export async function matchCustomer(tb, r, customerId, button) {
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

const DRAFT_FIELDS = [
  ['display_name', 'Customer name in QuickBooks'],
  ['given_name', 'First name'],
  ['family_name', 'Last name'],
  ['company_name', 'Organization'],
  ['email', 'Email'],
  ['phone', 'Phone'],
  ['address_line_1', 'Address'],
  ['city', 'City'],
  ['state', 'State'],
  ['zip', 'ZIP'],
];

/**
 * "Create customer": a form prefilled from the row, its name written the way the company's
 * customer list writes names ("O'Brien, Jane" or "Jane O'Brien"), every field editable; with
 * `displayName` (another name after a clash) it creates at once.
 */
export async function createCustomer(tb, r, button, displayName) {
  if (!displayName) {
    await openCustomerForm(tb, r);
    return;
  }
  await postCustomer(tb, r, button, { display_name: displayName });
}

async function openCustomerForm(tb, r) {
  const dlg = $('#customer-dialog');
  const status = h('p', { class: 'dialog-status', role: 'status', 'data-testid': 'customer-form-status', text: 'Loading…' });
  const close = h('button', { type: 'button', class: 'icon close', 'aria-label': 'Close', text: '×' });
  close.addEventListener('click', () => dlg.close());
  const form = h('form', { class: 'customer-form', 'data-testid': 'customer-form' });
  clear(dlg).append(
    h('div', { class: 'dialog-head' }, h('h2', { id: 'customer-dialog-title', text: `New QuickBooks customer: ${recordName(r)}` }), close),
    status, form);
  dlg.showModal();
  let data;
  try {
    data = await api('GET', `/api/deposits/${D.id}/records/${r.id}/customer`);
  } catch (e) {
    status.textContent = errorText(e);
    return;
  }
  const draft = data.draft || {};
  status.textContent = data.pattern === 'last_first'
    ? 'Named like the other customers: "Last, First".'
    : 'Named like the other customers: "First Last".';
  const inputs = DRAFT_FIELDS.map(([key, label]) => {
    const id = `cust-${key}`;
    const input = h('input', { id, name: key, type: 'text', value: draft[key] || '', 'data-testid': `customer-${key}`, autocomplete: 'off' });
    return h('div', { class: 'field' }, h('label', { for: id, text: label }), input);
  });
  const submit = h('button', { type: 'submit', 'data-testid': 'customer-create', text: 'Create in QuickBooks' });
  append(clear(form), [h('div', { class: 'detail-grid' }, inputs), h('div', { class: 'dialog-foot' }, submit)]);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [key] of DRAFT_FIELDS) body[key] = form.elements[key].value;
    dlg.close();
    await postCustomer($(`tbody.record[data-record-id="${r.id}"]`) || tb, r, null, body);
  });
  form.elements.display_name.focus();
}

async function postCustomer(tb, r, button, body) {
  await busy(button, async () => {
    try {
      const res = await api('POST', `/api/deposits/${D.id}/records/${r.id}/customer`, body);
      const c = res.result && res.result.customer;
      showRecord(res.record, `Created the customer ${c ? c.display_name : ''} in QuickBooks.`);
    } catch (e) {
      if (e instanceof ApiFailure && e.code === 'qbo_duplicate_name') {
        const existing = e.details && e.details.existing;
        const nameInput = h('input', { type: 'text', id: `newname-${r.id}`, value: `${body.display_name || recordName(r)} (2)` });
        const extra = [];
        if (existing && existing.id) {
          extra.push(actionButton(`Match ${existing.display_name}`, 'match-existing', (b) => matchCustomer(tb, r, existing.id, b)));
        }
        extra.push(h('span', { class: 'inline-form' },
          h('label', { for: nameInput.id, text: 'Another name' }), nameInput,
          actionButton('Create with this name', 'create-other-name', (b) => postCustomer(tb, r, b, { ...body, display_name: nameInput.value.trim() }))));
        rowMessage(tb, e.message, 'error', ' ', extra);
      } else {
        rowMessage(tb, errorText(e), 'error');
      }
    }
  });
}

export async function addContact(tb, r, button) {
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

export function openDonorDialog(recordId) {
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
