// DOM helpers every page uses: building and finding elements, the page's notice line,
// small action buttons and keeping a button disabled while its work runs.

/** Builds an element: h('button', {class: 'x', onclick: fn, 'data-testid': 't'}, 'text'). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'text') {
      el.textContent = v;
    } else if (k === 'value') {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

export function notice(text, kind = 'info') {
  const el = $('#notice');
  if (!el) return;
  el.textContent = text || '';
  el.className = `notice ${text ? kind : ''}`;
}

export function actionButton(text, testid, fn, cls = '') {
  const b = h('button', { type: 'button', class: `small ${cls}`, 'data-testid': testid, text });
  b.addEventListener('click', () => fn(b));
  return b;
}

export async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}
