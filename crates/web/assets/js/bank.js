// The bank deposit: once every row is sent (or kept out), one QuickBooks Deposit moves the
// receipts from Undeposited Funds into the bank account, with its total beside the total the
// bank slip states. Also how far the scans are attached to their receipts.

import { $, busy, clear, h } from './dom.js';
import { fmtDate, money, plural, sentence } from './format.js';
import { api, errorText } from './api.js';
import { qbo } from './qbo.js';
import { D } from './state.js';
import { reloadDeposit } from './deposit.js';

const RUNNING = ['queued', 'running'];

export function renderBank(d) {
  const panel = $('#bank-panel');
  const box = $('#bank');
  if (!panel || !box) return;
  const b = d.bank;
  if (!b || !qbo.usable) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  clear(box);
  const rec = b.recorded;
  if (rec && rec.qbo_id) {
    box.append(h('p', { class: 'notice ok', 'data-testid': 'bank-recorded' },
      h('strong', { text: `Recorded in QuickBooks: deposit #${rec.qbo_id}` }),
      ` into ${rec.account_name || 'the bank account'} on ${fmtDate(rec.txn_date)}, `,
      `${money(rec.total)} for ${plural(rec.receipts, 'receipt', 'receipts')}.`),
    totals(rec.total, b.stated_total));
  } else if (b.job && RUNNING.includes(b.job.state)) {
    box.append(h('p', { role: 'status', 'data-testid': 'bank-running', text: b.job.state === 'queued' ? 'Waiting for the worker to record the bank deposit…' : 'Recording the bank deposit in QuickBooks…' }));
    poll();
  } else if (!b.ready) {
    box.append(h('p', { class: 'muted', 'data-testid': 'bank-not-ready', text: sentence(b.why_not) }));
  } else {
    box.append(form(b));
  }
  if (b.attach_sources) box.append(attachments(d, b));
}

/** The receipts' total beside the slip's, with whether they agree. */
function totals(total, stated) {
  if (!stated) return h('p', { class: 'muted', 'data-testid': 'bank-totals', text: `Receipts total ${money(total)}; no bank slip or deposit report total was read with this deposit.` });
  const same = money(total) === money(stated);
  return h('p', { 'data-testid': 'bank-totals', 'data-agree': same ? 'yes' : 'no' },
    `Receipts total ${money(total)} · the bank slip says ${money(stated)} `,
    h('span', { class: `badge ${same ? 'ok' : 'warn'}`, text: same ? 'Matches' : 'Differs' }));
}

function form(b) {
  const account = h('select', { id: 'bank-account', 'data-testid': 'bank-account' }, h('option', { value: '', text: 'Loading…' }));
  const date = h('input', { type: 'date', id: 'bank-date', 'data-testid': 'bank-date', value: b.default_date });
  const go = h('button', { type: 'button', 'data-testid': 'bank-record', text: 'Record the bank deposit in QuickBooks' });
  const status = h('p', { role: 'status', 'data-testid': 'bank-status' });
  if (b.recorded && b.recorded.error) {
    status.className = 'notice error';
    status.textContent = sentence(b.recorded.error);
  }
  loadAccounts(account, b.recorded && b.recorded.account_id);
  go.addEventListener('click', () => busy(go, async () => {
    if (!account.value) {
      status.textContent = 'Choose the bank account the deposit went into.';
      return;
    }
    status.className = '';
    status.textContent = 'Recording…';
    try {
      await api('POST', `/api/deposits/${D.id}/bank-deposit`, { account_id: account.value, date: date.value });
      await reloadDeposit();
    } catch (e) {
      status.className = 'notice error';
      status.textContent = errorText(e);
    }
  }));
  return h('div', { class: 'bank-form' },
    totals(b.receipts_total, b.stated_total),
    h('div', { class: 'send-choices' },
      h('div', { class: 'field' }, h('label', { for: 'bank-account', text: 'Into account' }), account),
      h('div', { class: 'field' }, h('label', { for: 'bank-date', text: 'Date on the bank statement' }), date),
      go),
    status);
}

async function loadAccounts(sel, chosen) {
  sel.disabled = true;
  try {
    const accounts = await api('GET', '/api/qbo/bank-accounts');
    clear(sel);
    sel.append(h('option', { value: '', text: 'Choose…' }));
    for (const a of accounts) sel.append(h('option', { value: a.Id, text: `${a.Name} · ${a.AccountType || ''}` }));
    const bank = accounts.find((a) => a.AccountType === 'Bank');
    sel.value = chosen || (bank ? bank.Id : '');
  } catch (e) {
    clear(sel);
    sel.append(h('option', { value: '', text: errorText(e) }));
  }
  sel.disabled = false;
}

/** How far the scans are attached to their receipts, and a way to try the rest again. */
function attachments(d, b) {
  const sent = d.records.filter((r) => r.qbo.sales_receipt_id && r.provenance.kind !== 'csv');
  const done = sent.filter((r) => r.qbo.attachment_id).length;
  const failed = sent.filter((r) => !r.qbo.attachment_id && r.qbo.attachment_error);
  const running = b.attach_job && RUNNING.includes(b.attach_job.state);
  const box = h('div', { class: 'attachments', 'data-testid': 'attachments' },
    h('p', { 'data-testid': 'attach-count', 'data-done': done, 'data-total': sent.length },
      `Scans attached to ${done} of ${plural(sent.length, 'receipt', 'receipts')} in QuickBooks`,
      running ? ' (attaching…)' : '.'));
  if (failed.length) {
    box.append(h('ul', { class: 'send-results' }, failed.map((r) => h('li', { class: 'bad', 'data-testid': 'attach-error', text: sentence(r.qbo.attachment_error) }))));
  }
  if (running) {
    poll();
  } else if (done < sent.length) {
    const again = h('button', { type: 'button', class: 'secondary small', 'data-testid': 'attach-again', text: 'Attach the scans again' });
    again.addEventListener('click', () => busy(again, async () => {
      try {
        await api('POST', `/api/deposits/${D.id}/attach`);
        await reloadDeposit();
      } catch (e) {
        box.append(h('p', { class: 'notice error', text: errorText(e) }));
      }
    }));
    box.append(again);
  }
  return box;
}

/** While a job runs, the deposit is read again every second (once per page). */
function poll() {
  clearTimeout(D.bankPoll);
  D.bankPoll = setTimeout(reloadDeposit, 1000);
}
