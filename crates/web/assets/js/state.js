// The deposit page's state, shared by its modules, and look-ups of its records.

import { cents, centsToString } from './format.js';

export const D = {
  id: '',
  deposit: null,
  files: [],          // server file views
  uploads: [],        // local uploads: {key, file, name, size, loaded, state, error}
  es: null,           // EventSource while files are being read
  watchRetry: 0,      // ms before asking for a refused event stream again
  lastRecords: -1,
  expanded: new Set(),
  reloadTimer: 0,
  sendPoll: 0,
  bankPoll: 0,
  uploadSeq: 0,
};

export function recordName(r) {
  return (r.payer && (r.payer.organization_name || (r.payer.aliases || [])[0])) || '(no name)';
}

export function recordById(id) {
  return D.deposit && D.deposit.records.find((r) => r.id === id);
}

export function replaceRecord(rec) {
  const d = D.deposit;
  const i = d.records.findIndex((r) => r.id === rec.id);
  if (i >= 0) d.records[i] = rec;
  const total = d.records.reduce((n, r) => n + cents(r.amount), 0);
  d.total = centsToString(total);
}
