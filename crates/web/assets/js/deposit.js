// The deposit page: start-up, and reloading the deposit after changes.
//
// upload, review, donors and sending call back into each other and into this module (a row's
// actions re-render the row, a finished upload or send reloads the deposit). ES modules allow
// such cycles here because no module runs anything while it loads; the page starts only once
// every module is in place (app.js).

import { $, clear, h, notice } from './dom.js';
import { sentence } from './format.js';
import { api, errorText } from './api.js';
import { loadQboStatus } from './qbo.js';
import { D } from './state.js';
import { renderFiles, setupUpload, watchProgress } from './upload.js';
import { renderRecords } from './review.js';
import { renderSendPanel, resumeSend } from './sending.js';
import { openReport } from './report.js';
import { renderBank } from './bank.js';

export async function depositPage() {
  D.id = $('#deposit').dataset.depositId;
  setupUpload();
  $('#online-gifts').addEventListener('change', setOnlineGifts);
  $('#deposit-delete').addEventListener('click', deleteDeposit);
  $('#report-open').addEventListener('click', openReport);
  const st = await loadQboStatus();
  renderSendPanel(st);
  await reloadDeposit();
  if (D.deposit && D.deposit.processing) watchProgress();
  resumeSend();
}

export async function reloadDeposit() {
  try {
    const d = await api('GET', `/api/deposits/${D.id}`);
    D.deposit = d;
    D.files = d.files;
    renderWarnings(d.warnings || []);
    const pendingBox = $('#keep-pending');
    if (pendingBox && d.options) pendingBox.checked = !!d.options.keep_pending;
    const online = $('#online-gifts');
    if (online && d.online_gifts) {
      online.value = d.online_gifts;
      $('#online-gifts-option').hidden = false;
    }
    D.lastRecords = d.records.length;
    renderFiles();
    renderRecords();
    renderBank(d);
  } catch (e) {
    notice(errorText(e), 'error');
  }
}

/** Deletes the deposit after a second, explicit click (its receipts stay in QuickBooks). */
async function deleteDeposit(ev) {
  const b = ev.currentTarget;
  const status = $('#deposit-delete-status');
  if (b.dataset.confirm !== '1') {
    b.dataset.confirm = '1';
    b.classList.add('danger');
    b.textContent = 'Really delete this deposit?';
    status.textContent = 'Press again to delete it; this cannot be undone.';
    setTimeout(() => {
      if (!b.isConnected) return;
      delete b.dataset.confirm;
      b.classList.remove('danger');
      b.textContent = 'Delete this deposit…';
      status.textContent = '';
    }, 8000);
    return;
  }
  b.disabled = true;
  status.textContent = 'Deleting…';
  try {
    await api('DELETE', `/api/deposits/${D.id}`);
    location.assign('/');
  } catch (e) {
    b.disabled = false;
    status.textContent = errorText(e);
  }
}

/** Whether this deposit's online gifts are sent to QuickBooks or only listed in the report. */
async function setOnlineGifts(ev) {
  const sel = ev.currentTarget;
  try {
    await api('POST', `/api/deposits/${D.id}/options`, { online_gifts: sel.value });
    await reloadDeposit();
    notice(sel.value === 'send'
      ? 'Online gifts of this deposit will be sent to QuickBooks as receipts.'
      : 'Online gifts of this deposit are listed in the report only.', 'info');
  } catch (e) {
    if (D.deposit && D.deposit.online_gifts) sel.value = D.deposit.online_gifts;
    notice(errorText(e), 'error');
  }
}

/** The deposit's papers disagree with its rows: said at the top, where it cannot be missed. */
function renderWarnings(warnings) {
  const box = $('#deposit-warnings');
  if (!box) return;
  clear(box);
  for (const w of warnings) {
    box.append(h('p', { class: 'notice warning', 'data-testid': 'deposit-warning', 'data-code': w.code, text: sentence(w.message) }));
  }
}

export function scheduleReload(ms = 250) {
  clearTimeout(D.reloadTimer);
  D.reloadTimer = setTimeout(reloadDeposit, ms);
}
