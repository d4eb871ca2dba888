// Files of the deposit page: picking or dropping files, one upload request with a bar per
// file, then each file's reading progress from the server's event stream, and retries.

import { $, clear, h, notice } from './dom.js';
import { plural, sentence } from './format.js';
import { api, errorText, toLogin } from './api.js';
import { D } from './state.js';
import { reloadDeposit, scheduleReload } from './deposit.js';

const STAGES = {
  download: 'Reading the file',
  render: 'Preparing pages',
  extract: 'Reading',
  merge: 'Combining duplicates',
  match: 'Matching donors',
  done: 'Finishing',
};

export function setupUpload() {
  const input = $('#file-input');
  const zone = $('#dropzone');
  input.addEventListener('change', () => {
    const files = Array.from(input.files || []);
    input.value = '';
    if (files.length) uploadFiles(files);
  });
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    const files = Array.from((ev.dataTransfer && ev.dataTransfer.files) || []);
    if (files.length) uploadFiles(files);
  });
}

/** Sends the files in one request; each file's bar follows its own bytes. */
function uploadFiles(files) {
  const entries = files.map((file) => ({
    key: `u${++D.uploadSeq}`, file, name: file.name, size: file.size, loaded: 0, state: 'uploading', error: '',
  }));
  D.uploads.push(...entries);
  renderFiles();
  const form = new FormData();
  for (const e of entries) form.append('files', e.file, e.file.name);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/api/deposits/${D.id}/files`);
  xhr.setRequestHeader('Accept', 'application/json');
  const totalBytes = entries.reduce((n, e) => n + e.size, 0) || 1;
  xhr.upload.addEventListener('progress', (ev) => {
    if (!ev.lengthComputable) return;
    let sent = (ev.loaded / ev.total) * totalBytes;
    for (const e of entries) {
      e.loaded = Math.max(0, Math.min(e.size, sent));
      sent -= e.size;
    }
    renderFiles();
  });
  const fail = (message) => {
    for (const e of entries) {
      e.state = 'failed';
      e.error = message;
    }
    renderFiles();
  };
  xhr.addEventListener('error', () => fail('The upload was interrupted. Check the connection and try again.'));
  xhr.addEventListener('load', () => {
    if (xhr.status === 401) {
      toLogin();
      return;
    }
    let data = null;
    try {
      data = JSON.parse(xhr.responseText);
    } catch {
      data = null;
    }
    if (!data || !Array.isArray(data.files)) {
      const msg = data && data.error && data.error.message;
      fail(msg ? sentence(msg) : `The server answered ${xhr.status}; try again in a minute.`);
      return;
    }
    data.files.forEach((v, i) => {
      const e = entries[i];
      if (!e) return;
      if (v.accepted) {
        e.state = 'accepted';
        e.fileId = v.file_id;
      } else {
        e.state = 'failed';
        e.error = sentence(v.error || 'The file was not accepted.');
      }
    });
    // Files after the last verdict were never read (the server stopped at a limit or a storage
    // error); the last verdict says why.
    const last = data.files[data.files.length - 1];
    const why = last && !last.accepted && last.error ? sentence(last.error) : 'The file was not received; send it again.';
    for (const e of entries.slice(data.files.length)) {
      e.state = 'failed';
      e.error = why;
    }
    // Accepted files now live on the server; their bars follow the job from here.
    D.uploads = D.uploads.filter((e) => e.state !== 'accepted');
    renderFiles();
    scheduleReload(0);
    watchProgress();
  });
  xhr.send(form);
}

export function watchProgress() {
  if (D.es) return;
  const es = new EventSource(`/api/deposits/${D.id}/events`);
  D.es = es;
  const onProgress = (ev) => {
    let p;
    try {
      p = JSON.parse(ev.data);
    } catch {
      return;
    }
    D.files = p.files;
    renderFiles();
    if (p.records !== D.lastRecords || p.finished) {
      D.lastRecords = p.records;
      scheduleReload(p.finished ? 0 : 400);
    }
    if (p.finished) stopWatching();
  };
  es.addEventListener('progress', onProgress);
  es.addEventListener('done', onProgress);
  es.addEventListener('gone', () => {
    stopWatching();
    notice('This deposit has expired or was removed.', 'error');
  });
}

function stopWatching() {
  if (D.es) {
    D.es.close();
    D.es = null;
  }
}

function fileStatus(f) {
  switch (f.state) {
    case 'queued':
      return 'Waiting to start…';
    case 'running': {
      const stage = STAGES[f.stage] || 'Working';
      if (f.pages > 0 && (f.stage === 'extract' || f.stage === 'render')) {
        return `${stage}: page ${Math.min(f.page, f.pages)} of ${f.pages}`;
      }
      return `${stage}…`;
    }
    case 'done':
      return f.pages > 0 ? `Done: ${plural(f.pages, 'page', 'pages')} read` : 'Done';
    case 'expired':
      return 'Failed';
    default:
      return 'Failed';
  }
}

export function renderFiles() {
  const list = $('#files');
  if (!list) return;
  clear(list);
  if (!D.files.length && !D.uploads.length) {
    list.append(h('li', { class: 'empty', text: 'No files yet.' }));
    return;
  }
  for (const f of D.files) {
    const failed = ['failed', 'dead', 'expired'].includes(f.state);
    const bar = h('progress', { max: 100, 'aria-label': `Progress of ${f.name}` });
    if (f.state === 'done' || failed) bar.value = 100;
    else if (f.state === 'running' && f.pages > 0) bar.value = Math.round((100 * Math.min(f.page, f.pages)) / f.pages);
    else if (f.state === 'queued') bar.value = 0;
    // (running without a page count: an indeterminate bar)
    list.append(h('li', { class: `file ${failed ? 'failed' : f.state}`, 'data-testid': 'file-row', 'data-file-name': f.name, 'data-state': failed ? 'failed' : f.state },
      h('span', { class: 'file-name', text: f.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', text: fileStatus(f) }),
      failed ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: sentence(f.error || 'Reading this file failed.') }) : null,
      failed && f.state !== 'expired'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: (ev) => retryFile(f, ev.currentTarget), text: 'Retry' })
        : null,
    ));
  }
  for (const u of D.uploads) {
    const bar = h('progress', { max: 100, value: u.state === 'failed' ? 100 : Math.round((100 * u.loaded) / (u.size || 1)), 'aria-label': `Upload of ${u.name}` });
    list.append(h('li', { class: `file ${u.state}`, 'data-testid': 'file-row', 'data-file-name': u.name, 'data-state': u.state },
      h('span', { class: 'file-name', text: u.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', text: u.state === 'failed' ? 'Not uploaded' : `Uploading: ${Math.round((100 * u.loaded) / (u.size || 1))}%` }),
      u.state === 'failed' ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: u.error }) : null,
      u.state === 'failed'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: () => { D.uploads = D.uploads.filter((x) => x !== u); uploadFiles([u.file]); }, text: 'Try again' })
        : null,
    ));
  }
}

async function retryFile(f, button) {
  button.disabled = true;
  try {
    await api('POST', `/api/deposits/${D.id}/files/${encodeURIComponent(f.id)}/retry`);
    notice(`Reading ${f.name} again.`, 'info');
    await reloadDeposit();
    watchProgress();
  } catch (e) {
    button.disabled = false;
    notice(errorText(e), 'error');
  }
}
