// The QuickBooks badge in the top bar, and what the other modules need to know of the
// connection (`qbo.usable`: configured and connected).

import { $, clear, h } from './dom.js';
import { api } from './api.js';

export const qbo = { status: null, usable: false, configured: false };

export async function loadQboStatus() {
  const box = $('#qbo-status');
  let st;
  try {
    st = await api('GET', '/api/qbo/status');
  } catch (e) {
    if (box) clear(box).append(h('span', { class: 'badge muted', text: 'QuickBooks status unknown' }));
    return null;
  }
  qbo.status = st;
  qbo.configured = !!st.configured;
  qbo.usable = !!(st.configured && st.connected);
  if (!box) return st;
  clear(box);
  if (!st.configured) {
    box.append(h('span', { class: 'badge muted', 'data-state': 'not-configured', text: 'QuickBooks is not set up' }));
  } else if (st.reconnect_needed) {
    box.append(
      h('span', { class: 'badge danger', 'data-state': 'reconnect', text: 'QuickBooks: reconnect needed', title: st.message || '' }),
      h('a', { href: '/qbo/connect', class: 'button small', 'data-testid': 'qbo-connect', text: 'Reconnect' }),
    );
  } else if (st.connected) {
    const env = st.environment === 'production' ? 'production' : 'sandbox';
    box.append(
      h('span', { class: `badge ${env === 'production' ? 'ok' : 'info'}`, 'data-state': env, text: `QuickBooks: ${env}` }),
      h('a', { href: '/qbo/connect', class: 'quiet-link', 'data-testid': 'qbo-connect', text: 'Reconnect' }),
    );
  } else {
    box.append(
      h('span', { class: 'badge warn', 'data-state': 'not-connected', text: 'QuickBooks: not connected' }),
      h('a', { href: '/qbo/connect', class: 'button small', 'data-testid': 'qbo-connect', text: 'Connect' }),
    );
  }
  return st;
}
