// The JSON API: one fetch wrapper whose failures carry a message people can read, and the
// way back to sign-in when the session has ended.

import { sentence } from './format.js';
import { notice } from './dom.js';

/** Times a page action asks again by itself while QuickBooks says it is busy. */
const BUSY_TRIES = 10;

export class ApiFailure extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function toLogin() {
  const next = encodeURIComponent(location.pathname);
  location.assign(`/login?next=${next}`);
}

/**
 * Calls the API; resolves to the JSON body, rejects with an ApiFailure people can read. When
 * QuickBooks is busy (503 `qbo_busy`) the call is made again by itself after the Retry-After
 * the server gave, saying so on the page: QuickBooks refused before doing anything.
 */
export async function api(method, path, body) {
  for (let tries = 1; ; tries += 1) {
    try {
      return await apiOnce(method, path, body);
    } catch (e) {
      if (!(e instanceof ApiFailure) || e.code !== 'qbo_busy' || tries >= BUSY_TRIES) throw e;
      const secs = Math.max(1, Math.min(120, e.retryAfter || 60));
      notice(`QuickBooks is busy; trying again in ${secs} s.`, 'info');
      await new Promise((r) => setTimeout(r, secs * 1000));
    }
  }
}

async function apiOnce(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiFailure(0, 'network', 'The server cannot be reached. Check the connection and try again.');
  }
  if (res.status === 401) {
    toLogin();
    throw new ApiFailure(401, 'sign_in_required', 'Your session ended; sign in again.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    if (e && e.message) {
      const failure = new ApiFailure(res.status, e.code, sentence(e.message), e.details);
      failure.retryAfter = Number(res.headers.get('Retry-After')) || 0;
      throw failure;
    }
    const failure = new ApiFailure(res.status, 'http', `The server answered ${res.status}; try again in a minute.`);
    // An answer of its own (a send's result): the caller may read it.
    failure.body = data;
    throw failure;
  }
  return data;
}

export function errorText(e) {
  if (e instanceof ApiFailure) return e.message;
  return 'Something went wrong. Reload the page and try again.';
}
