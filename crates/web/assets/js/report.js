// The deposit report: shown in a text box to edit, copied or downloaded (.txt, .csv).

import { $, actionButton, clear, h, notice } from './dom.js';
import { fmtDate } from './format.js';
import { api, errorText } from './api.js';
import { D } from './state.js';

export async function openReport() {
  const box = $('#report');
  const button = $('#report-open');
  if (button) button.disabled = true;
  let rep;
  try {
    rep = await api('GET', `/api/deposits/${D.id}/report`);
  } catch (e) {
    if (button) button.disabled = false;
    notice(errorText(e), 'error');
    return;
  }
  const text = h('textarea', { id: 'report-text', 'data-testid': 'report-text', rows: 18, spellcheck: 'false' });
  text.value = rep.text;
  const status = h('span', { class: 'muted', role: 'status', 'data-testid': 'report-status' });
  const copy = actionButton('Copy to clipboard', 'report-copy', async () => {
    try {
      await navigator.clipboard.writeText(text.value);
      status.textContent = 'Copied.';
    } catch {
      text.select();
      status.textContent = 'The browser did not allow copying; the text is selected, press Ctrl+C.';
    }
  });
  const txt = actionButton('Download .txt', 'report-download-txt', () => {
    const blob = new Blob([text.value], { type: 'text/plain;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `deposit-${rep.date}.txt`, class: 'visually-hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, 'secondary');
  const csv = h('a', { href: `/api/deposits/${D.id}/report.csv`, download: `deposit-${rep.date}.csv`, class: 'button secondary small', 'data-testid': 'report-download-csv', text: 'Download .csv (FoM columns)' });
  const all = h('a', { href: `/api/deposits/${D.id}/export.csv`, download: `deposit-all-fields-${rep.date}.csv`, class: 'button secondary small', 'data-testid': 'report-download-export', text: 'Download all fields (.csv)' });
  const again = actionButton('Rebuild from the records', 'report-refresh', async () => {
    try {
      const fresh = await api('GET', `/api/deposits/${D.id}/report`);
      text.value = fresh.text;
      status.textContent = 'Rebuilt from the current records (your edits were replaced).';
    } catch (e) {
      status.textContent = errorText(e);
    }
  }, 'secondary');
  clear(box).append(
    h('label', { for: 'report-text', text: `Report for ${fmtDate(rep.date)} (edit freely before copying)` }),
    text,
    h('div', { class: 'buttons' }, copy, txt, csv, all, again, status));
  text.setSelectionRange(0, 0);
  text.focus();
  text.scrollTop = 0;
}
