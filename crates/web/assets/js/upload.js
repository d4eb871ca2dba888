// Files of the deposit page: picking or dropping files, photos shrunk in the page, one upload
// request per file (two at a time) with its own bar, except that the photos picked together
// go in one request (the server reads them together, so a check meets its envelope), waiting
// by itself when the server has no room yet, then each file's reading progress from the
// server's event stream, and retries.

import { $, clear, h, notice } from './dom.js';
import { plural, sentence } from './format.js';
import { api, errorText, toLogin } from './api.js';
import { D } from './state.js';
import { reloadDeposit, scheduleReload } from './deposit.js';
import { shrinkPhoto } from './shrink.js';
import { csvParts } from './columns.js';

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
  const pendingBox = $('#keep-pending');
  pendingBox.addEventListener('change', async () => {
    try {
      const options = await api('POST', `/api/deposits/${D.id}/options`, { keep_pending: pendingBox.checked });
      if (D.deposit) D.deposit.options = options;
      renderFiles();
      notice(pendingBox.checked
        ? 'Pending payments in CSV files are read from now on, each marked for a check.'
        : 'Pending payments in the next CSV files are skipped.', 'info');
    } catch (e) {
      pendingBox.checked = !pendingBox.checked;
      notice(errorText(e), 'error');
    }
  });
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

// Files go one request each, two at a time, so each has its own bar, verdict and retry; photos
// picked together go together, up to PHOTOS_PER_REQUEST and PHOTO_REQUEST_BYTES after
// shrinking. When the server has no room for the next request yet (a small Redis upload store)
// it answers `wait_for_room` with a Retry-After: its files wait in the list and are sent again
// by themselves, and the files behind them wait too rather than asking again and again.
const PARALLEL = 2;
const PHOTOS_PER_REQUEST = 10;
const PHOTO_REQUEST_BYTES = 8 * 1048576;
const pending = [];
/** Photos shrunk before sending, by file id: { note, ms, from, to }. */
const shrunk = new Map();
let sending = 0;
let holdUntil = 0;
let pumpTimer = null;
let tickTimer = null;

function photoMaxLong() {
  const main = $('#deposit');
  return Number((main && main.dataset.photoMaxLong) || 0);
}

function mb(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function isPhoto(file) {
  return /^image\/(jpeg|png)$/.test(file.type || '') || /\.(jpe?g|png)$/i.test(file.name || '');
}

function uploadFiles(files) {
  const pick = ++D.uploadSeq;
  const entries = files.map((file) => ({
    key: `u${++D.uploadSeq}`, pick, file, name: file.name, size: file.size, loaded: 0, state: 'queued', error: '',
    prepared: false, note: '', ahead: 0, retryAt: 0, shrinkMs: null,
  }));
  D.uploads.push(...entries);
  pending.push(...entries);
  renderFiles();
  pump();
}

function pump() {
  if (pumpTimer) {
    clearTimeout(pumpTimer);
    pumpTimer = null;
  }
  const wait = holdUntil - Date.now();
  if (wait > 0) {
    if (pending.length) pumpTimer = setTimeout(pump, wait);
    return;
  }
  while (sending < PARALLEL && pending.length) {
    const batch = [pending.shift()];
    // The photos picked with this one, in the order picked, ride along.
    if (isPhoto(batch[0].file)) {
      for (let i = 0; i < pending.length && batch.length < PHOTOS_PER_REQUEST;) {
        const o = pending[i];
        if (o.pick === batch[0].pick && isPhoto(o.file)) {
          batch.push(o);
          pending.splice(i, 1);
        } else {
          i += 1;
        }
      }
    }
    sending += 1;
    sendBatch(batch).finally(() => {
      sending -= 1;
      pump();
    });
  }
}

/** While a file waits for room, its countdown is redrawn every second. */
function tick() {
  if (tickTimer) return;
  tickTimer = setInterval(() => {
    if (!D.uploads.some((u) => u.state === 'waiting')) {
      clearInterval(tickTimer);
      tickTimer = null;
    }
    renderFiles();
  }, 1000);
}

async function prepare(e) {
  if (e.prepared) return;
  e.state = 'shrinking';
  renderFiles();
  const small = await shrinkPhoto(e.file, photoMaxLong());
  if (small) {
    e.upload = small.file;
    e.shrinkMs = small.ms;
    e.note = `Shrunk from ${mb(small.from)} to ${mb(small.to)}`;
  } else {
    e.upload = e.file;
  }
  e.size = e.upload.size;
  e.prepared = true;
}

async function sendBatch(batch) {
  for (const e of batch) await prepare(e);
  // What does not fit in one request after shrinking goes back to the front of the line.
  let bytes = 0;
  const send = batch.filter((e, i) => {
    bytes += e.size;
    return i === 0 || bytes <= PHOTO_REQUEST_BYTES;
  });
  const later = batch.filter((e) => !send.includes(e));
  for (const e of later) e.state = 'queued';
  pending.unshift(...later);
  for (const e of send) {
    e.state = 'uploading';
    e.loaded = 0;
  }
  renderFiles();
  const answer = await post(send);
  if (answer.status === 401) {
    toLogin();
    return;
  }
  const data = answer.data;
  const err = data && data.error;
  if (answer.status === 503 && err && err.code === 'wait_for_room') {
    const details = err.details || {};
    const secs = answer.retryAfter || details.retry_after || 10;
    const retryAt = Date.now() + secs * 1000;
    for (const e of send) {
      e.state = 'waiting';
      e.ahead = Number(details.ahead || 0);
      e.retryAt = retryAt;
    }
    holdUntil = Math.max(holdUntil, retryAt);
    pending.unshift(...send);
    tick();
    renderFiles();
    return;
  }
  const verdicts = data && Array.isArray(data.files) ? data.files : [];
  let anyAccepted = false;
  send.forEach((e, i) => {
    const v = verdicts[i] && verdicts[i].name !== '' ? verdicts[i] : null;
    if (v && v.accepted) {
      anyAccepted = true;
      // The saved size stays on the file's row once the server lists it.
      if (e.shrinkMs !== null && v.file_id) {
        shrunk.set(v.file_id, { note: e.note, ms: e.shrinkMs, from: e.file.size, to: e.size });
      }
      D.uploads = D.uploads.filter((u) => u !== e);
      return;
    }
    e.state = 'failed';
    if (answer.status === 0) {
      e.error = 'The upload was interrupted. Check the connection and try again.';
    } else if (v && v.error) {
      e.error = sentence(v.error);
    } else if (err && err.message) {
      e.error = sentence(err.message);
    } else if (verdicts.length) {
      e.error = 'The upload stopped before this file; try again.';
    } else {
      e.error = `The server answered ${answer.status}; try again in a minute.`;
    }
  });
  renderFiles();
  if (anyAccepted) {
    scheduleReload(0);
    watchProgress();
  }
}

/** Files in one request: resolves to { status, data, retryAfter } (status 0: no answer). */
function post(batch) {
  return new Promise((resolve) => {
    const form = new FormData();
    for (const e of batch) form.append('files', e.upload, e.upload.name || e.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/deposits/${D.id}/files`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (ev) => {
      if (!ev.lengthComputable) return;
      // The request's files fill in order: each bar shows its own share.
      let before = 0;
      const total = batch.reduce((n, e) => n + e.size, 0) || 1;
      const sent = (ev.loaded / ev.total) * total;
      for (const e of batch) {
        e.loaded = Math.max(0, Math.min(e.size, sent - before));
        before += e.size;
      }
      renderFiles();
    });
    xhr.addEventListener('error', () => resolve({ status: 0, data: null, retryAfter: 0 }));
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      const retryAfter = Number(xhr.getResponseHeader('Retry-After')) || 0;
      resolve({ status: xhr.status, data, retryAfter });
    });
    xhr.send(form);
  });
}

function uploadStatus(u) {
  switch (u.state) {
    case 'queued':
      return 'Waiting to send…';
    case 'shrinking':
      return 'Shrinking the photo…';
    case 'waiting': {
      const secs = Math.max(0, Math.ceil((u.retryAt - Date.now()) / 1000));
      const ahead = u.ahead === 1 ? '1 file ahead is' : `${u.ahead} files ahead are`;
      const why = u.ahead > 0 ? `Waiting for room: ${ahead} being read` : 'Waiting for room';
      return `${why}; trying again in ${secs} s`;
    }
    case 'failed':
      return 'Not uploaded';
    default:
      return `Uploading: ${Math.round((100 * u.loaded) / (u.size || 1))}%`;
  }
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
    D.watchRetry = 0;
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
  es.addEventListener('signed_out', () => {
    stopWatching();
    toLogin();
  });
  es.addEventListener('error', () => {
    // A dropped connection is retried by the browser itself. A refused stream (429 when this
    // session has too many open, 401 after sign-out) is closed for good: read the deposit now
    // and then instead, and ask for a stream again, waiting longer each time.
    if (es.readyState !== EventSource.CLOSED) return;
    stopWatching();
    D.watchRetry = Math.min((D.watchRetry || 1500) * 2, 30_000);
    setTimeout(async () => {
      await reloadDeposit(); // a 401 here leads to the sign-in page
      if (D.deposit && D.deposit.processing) watchProgress();
    }, D.watchRetry);
  });
}

function stopWatching() {
  if (D.es) {
    D.es.close();
    D.es = null;
  }
}

function fileStatus(f) {
  // Photos of one upload are one job: their pages are the photos.
  const others = f.together ? `, read with ${plural(f.together, 'other photo', 'other photos')}` : '';
  switch (f.state) {
    case 'queued':
      return `Waiting to start…${others}`;
    case 'running': {
      const stage = STAGES[f.stage] || 'Working';
      if (f.pages > 0 && (f.stage === 'extract' || f.stage === 'render')) {
        const unit = f.together ? 'photo' : 'page';
        return `${stage}: ${unit} ${Math.min(f.page, f.pages)} of ${f.pages}`;
      }
      return `${stage}…`;
    }
    case 'done':
      if (f.together) return `Done${others}`;
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
    const small = shrunk.get(f.id);
    list.append(h('li', { class: `file ${failed ? 'failed' : f.state}`, 'data-testid': 'file-row', 'data-file-name': f.name, 'data-state': failed ? 'failed' : f.state,
      'data-shrink-ms': small ? String(small.ms) : null, 'data-size': small ? String(small.to) : null, 'data-original-size': small ? String(small.from) : null },
      h('span', { class: 'file-name', text: f.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', text: fileStatus(f) }),
      small ? h('span', { class: 'file-note', 'data-testid': 'file-note', text: small.note }) : null,
      failed ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: sentence(f.error || 'Reading this file failed.') }) : null,
      failed && f.state !== 'expired'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: (ev) => retryFile(f, ev.currentTarget), text: 'Retry' })
        : null,
      csvParts(f),
    ));
  }
  for (const u of D.uploads) {
    const done = u.state === 'failed' ? 100 : Math.round((100 * u.loaded) / (u.size || 1));
    const bar = h('progress', { max: 100, 'aria-label': `Upload of ${u.name}` });
    // Shrinking has no measure (an indeterminate bar); waiting files have sent nothing yet.
    if (u.state !== 'shrinking') bar.value = u.state === 'uploading' || u.state === 'failed' ? done : 0;
    list.append(h('li', { class: `file ${u.state}`, 'data-testid': 'file-row', 'data-file-name': u.name, 'data-state': u.state,
      'data-shrink-ms': u.shrinkMs === null ? null : String(u.shrinkMs), 'data-size': String(u.size), 'data-original-size': String(u.file.size) },
      h('span', { class: 'file-name', text: u.name }),
      bar,
      h('span', { class: 'file-status', 'data-testid': 'file-status', role: u.state === 'waiting' ? 'status' : null, text: uploadStatus(u) }),
      u.note ? h('span', { class: 'file-note', 'data-testid': 'file-note', text: u.note }) : null,
      u.state === 'failed' ? h('span', { class: 'file-error', 'data-testid': 'file-error', role: 'alert', text: u.error }) : null,
      u.state === 'failed'
        ? h('button', { type: 'button', class: 'small', 'data-testid': 'file-retry', onclick: () => { u.state = 'queued'; u.error = ''; pending.push(u); renderFiles(); pump(); }, text: 'Try again' })
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
