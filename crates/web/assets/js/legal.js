// The settings page's legal texts: the licence agreement and privacy policy Intuit's
// developer portal links to (/legal/eula, /legal/privacy), each replaceable and resettable.

import { $, busy, clear, h } from './dom.js';
import { api, errorText } from './api.js';

export async function legalSettings() {
  const box = $('#legal-texts');
  if (!box) return;
  let texts;
  try {
    texts = await api('GET', '/api/settings/legal');
  } catch (e) {
    box.append(h('p', { class: 'notice error', text: errorText(e) }));
    return;
  }
  clear(box);
  for (const [slug, t] of Object.entries(texts)) box.append(editor(slug, t));
}

function editor(slug, t) {
  const area = h('textarea', { id: `legal-${slug}`, rows: 10, 'data-testid': `legal-text-${slug}`, spellcheck: 'true' });
  area.value = t.text;
  const status = h('span', { class: 'muted', role: 'status', 'data-testid': `legal-status-${slug}`, text: t.own ? 'Your own text.' : 'The default text.' });
  const save = h('button', { type: 'button', 'data-testid': `legal-save-${slug}`, text: 'Save' });
  const reset = h('button', { type: 'button', class: 'secondary', 'data-testid': `legal-reset-${slug}`, text: 'Back to the default' });
  const put = (text) => busy(save, async () => {
    status.textContent = 'Saving…';
    try {
      const r = await api('PUT', `/api/settings/legal/${slug}`, { text });
      area.value = r.text;
      status.textContent = r.own ? 'Saved: your own text.' : 'Back to the default text.';
    } catch (e) {
      status.textContent = errorText(e);
    }
  });
  save.addEventListener('click', () => put(area.value));
  reset.addEventListener('click', () => put(null));
  return h('div', { class: 'field' },
    h('label', { for: `legal-${slug}` }, `${t.title} `, h('a', { href: t.url, target: '_blank', rel: 'noopener', text: `(${t.url})` })),
    area,
    h('p', { class: 'actions' }, save, ' ', reset, ' ', status));
}
