// The HTTP API as the UI calls it: every request carries the token the
// user gave (X-Drover-Token header, never a URL), errors become
// ApiError with the API's stable code, and streams (the event stream,
// followed logs) are read through fetch so they can carry the header
// too (EventSource cannot).

const TOKEN_KEY = 'drover.acl-token';

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(secret) {
  try {
    if (secret) sessionStorage.setItem(TOKEN_KEY, secret);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode quotas): the token lasts until
    // reload only, which is still correct.
  }
}

// ApiError is a non-2xx answer. code is the API's machine-readable
// code (permission_denied, not_found, ...); capability, for a 403, is
// what the token lacks as the server named it.
export class ApiError extends Error {
  constructor(status, code, message, path) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
    this.path = path;
    this.capability = status === 403 ? missingCapability(this.message) : '';
  }
}

// missingCapability pulls what a token lacks out of a 403's message:
//   token "x" lacks capability read-job in namespace "default"
//   token "x" lacks capability variables read on path "a/b" in namespace "default"
//   token "x" lacks agent:read (it needs a policy with agent { ... })
export function missingCapability(message) {
  let m = /lacks capability (.+?) in namespace "([^"]*)"/.exec(message);
  if (m) return `${m[1].replace(/"/g, '')} (namespace ${m[2]})`;
  m = /lacks ([\w-]+:[\w-]+)/.exec(message);
  if (m) return m[1];
  m = /lacks (?:capability )?([\w-]+)/.exec(message);
  return m ? m[1] : '';
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const token = getToken();
  if (token) h['X-Drover-Token'] = token;
  return h;
}

async function errorFrom(resp, path) {
  let text = '';
  try {
    text = await resp.text();
  } catch {
    // the body could not be read; the status says enough
  }
  let code = '';
  let message = text.trim();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') {
      code = body.Code || '';
      message = body.Error || message;
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(resp.status, code, message || `HTTP ${resp.status} from ${path}`, path);
}

// request sends one API call and resolves to {data, index, headers};
// index is X-Drover-Index (0 when absent), for blocking queries.
export async function request(path, { method = 'GET', body, signal } = {}) {
  const init = {
    method,
    headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    signal,
    cache: 'no-store',
    credentials: 'same-origin',
    redirect: 'error',
  };
  if (body !== undefined) init.body = JSON.stringify(body);
  const resp = await fetch(path, init);
  if (!resp.ok) throw await errorFrom(resp, path);
  const text = await resp.text();
  return {
    data: text ? JSON.parse(text) : null,
    index: Number(resp.headers.get('X-Drover-Index') || 0),
    headers: resp.headers,
  };
}

// stream GETs path and calls onChunk with each piece of decoded text
// until the server ends the response (resolves) or signal aborts
// (rejects with an AbortError). onOpen runs once the headers are in.
export async function stream(path, { signal, onOpen, onChunk }) {
  const resp = await fetch(path, {
    headers: headers({ Accept: '*/*' }),
    signal,
    cache: 'no-store',
    credentials: 'same-origin',
    redirect: 'error',
  });
  if (!resp.ok) throw await errorFrom(resp, path);
  if (onOpen) onOpen();
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    if (text) onChunk(text);
  }
  const rest = decoder.decode();
  if (rest) onChunk(rest);
}

// streamLines is stream for newline-delimited JSON: onLine gets each
// parsed line.
export async function streamLines(path, { signal, onOpen, onLine }) {
  let buf = '';
  await stream(path, {
    signal,
    onOpen,
    onChunk(text) {
      buf += text;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) onLine(JSON.parse(line));
      }
    },
  });
}

export function isAbort(err) {
  return err && err.name === 'AbortError';
}

// q builds a query string from an object, skipping empty values.
export function q(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) {
      parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
    }
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

// enc escapes one path segment; variable paths keep their slashes.
export function enc(segment) {
  return encodeURIComponent(segment);
}
export function encPath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}
