// The JSON API: one fetch wrapper whose failures carry a message people can read, and the
// way back to sign-in when the session has ended.

import { sentence } from './format.js';

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

/** Calls the API; resolves to the JSON body, rejects with an ApiFailure people can read. */
export async function api(method, path, body) {
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
    if (e && e.message) throw new ApiFailure(res.status, e.code, sentence(e.message), e.details);
    throw new ApiFailure(res.status, 'http', `The server answered ${res.status}; try again in a minute.`);
  }
  return data;
}

export function errorText(e) {
  if (e instanceof ApiFailure) return e.message;
  return 'Something went wrong. Reload the page and try again.';
}
