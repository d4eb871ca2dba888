// Sending to QuickBooks: the item, account and payment-method choices, sending one row,
// sending all rows with progress, and the results.

import { $, busy, clear, h, notice } from './dom.js';
import { money, plural, sentence } from './format.js';
import { api, errorText } from './api.js';
import { qbo } from './qbo.js';
import { D, recordById, recordName } from './state.js';
import { reloadDeposit } from './deposit.js';
import { renderTotals, rowMessage, showRecord } from './review.js';
import { canSetUp, openSetup } from './setup.js';

const OUTCOMES = {
  sent: 'Sent',
  found_existing: 'Already in QuickBooks',
  already_sent: 'Already sent',
  refused: 'Not sent',
  error: 'Error',
  kept_out: 'Kept out',
  duplicate: 'Possible duplicate',
};
const DONE = ['sent', 'found_existing', 'already_sent', 'kept_out'];

export async function sendRow(tb, r, button) {
  await busy(button, async () => {
    rowMessage(tb, 'Sending to QuickBooks…', 'info');
    try {
      const res = await api('POST', `/api/deposits/${D.id}/records/${r.id}/send`);
      await refreshOne(r.id);
      const fresh = $(`tbody.record[data-record-id="${r.id}"]`);
      rowMessage(fresh, resultText(res), DONE.includes(res.outcome) ? 'ok' : 'error');
    } catch (e) {
      await refreshOne(r.id);
      // A row that was not sent answers with its result: say why in its words.
      const res = e && e.body && e.body.outcome ? e.body : null;
      const tb2 = $(`tbody.record[data-record-id="${r.id}"]`);
      rowMessage(tb2, res ? resultText(res) : errorText(e), res && res.outcome === 'kept_out' ? 'info' : 'error');
      // The company lacks (or refused) the item, account or payment method: set it up, then
      // send this row again.
      if (res && canSetUp(res.choose)) {
        openSetup(res.choose, res.message, async () => {
          renderSendPanel(lastStatus);
          const again = tb2 && $('[data-testid=send-row]', tb2);
          if (again) await sendRow(tb2, r, again);
        });
      }
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

/** The QuickBooks status the panel was last drawn for, to draw it again after a set-up. */
let lastStatus = null;

export function renderSendPanel(st) {
  lastStatus = st;
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

/** The value of each list's "Create new…" entry. */
const NEW = '__new';

async function loadSendChoices(item, account, method, saved) {
  item.dataset.kind = 'item';
  account.dataset.kind = 'account';
  method.dataset.kind = 'payment_method';
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
    sel.append(h('option', { value: NEW, text: 'Create new…' }));
    sel.value = chosen || '';
    sel.dataset.saved = sel.value;
    sel.disabled = false;
  };
  fill(item, items.filter((i) => i.Active !== false), defaults.item_id, (i) => i.Name);
  fill(account, accounts.filter((a) => a.Active !== false), defaults.deposit_account_id,
    (a) => (a.AccountSubType === 'UndepositedFunds' ? `${a.Name} (recommended)` : `${a.Name} · ${a.AccountType || ''}`));
  fill(method, methods.filter((m) => m.Active !== false), defaults.payment_method_id, (m) => m.Name);
  const save = async (key, sel) => {
    if (sel.value === NEW) {
      sel.value = sel.dataset.saved || '';
      openSetup(sel.dataset.kind, null, () => renderSendPanel(lastStatus));
      return;
    }
    sel.dataset.saved = sel.value;
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

export async function resumeSend() {
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
      // Rows stopped by the company's set-up (no item, or a reference QuickBooks refused):
      // offer to set it up, then send the rest.
      const setup = results.find((x) => canSetUp(x.choose));
      if (setup) {
        openSetup(setup.choose, setup.message, () => {
          renderSendPanel(lastStatus);
          const b = $('#send-all');
          if (b) startSendAll(b);
        });
      }
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
      const ok = DONE.includes(res.outcome);
      const badge = res.outcome === 'kept_out' ? 'muted' : ok ? 'ok' : ['refused', 'duplicate'].includes(res.outcome) ? 'warn' : 'danger';
      return h('li', { class: ok ? 'ok' : 'bad', 'data-testid': 'send-result', 'data-outcome': res.outcome, 'data-record-id': res.record_id },
        h('span', { class: `badge ${badge}`, text: OUTCOMES[res.outcome] || res.outcome }), ' ',
        h('strong', { text: rec ? recordName(rec) : 'A deleted row' }),
        rec && rec.amount ? ` (${money(rec.amount)})` : '', ': ',
        res.receipt_id ? `sales receipt #${res.receipt_id}` : sentence(res.message || ''));
    })));
}
