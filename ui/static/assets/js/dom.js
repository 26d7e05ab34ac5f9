// Building and updating the page. Views are functions returning fresh
// DOM built with h(); morph() then patches the live DOM to match, so a
// live update keeps focus, scroll, open <details> and text selection.
// Nothing here sets inline styles or HTML strings: the page's
// Content-Security-Policy forbids inline styles, and text always goes
// in as text nodes.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  let value;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'value') value = v;
    else el.setAttribute(k === 'className' ? 'class' : k, v === true ? '' : String(v));
  }
  append(el, children);
  // After the children: a <select>'s value needs its options.
  if (value !== undefined) {
    el.value = value;
    el.setAttribute('data-value', String(value));
  }
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// morph makes `from` (live) look like `to` (fresh), reusing nodes
// position by position. Elements marked data-keep keep their children
// (a log being streamed into); form fields keep what the user is typing.
export function morph(from, to) {
  syncAttributes(from, to);
  if (from.hasAttribute('data-keep')) return;
  morphChildren(from, to);
  if (from instanceof HTMLInputElement || from instanceof HTMLSelectElement) {
    const v = to.getAttribute('data-value');
    const typing = document.activeElement === from && from instanceof HTMLInputElement;
    if (v !== null && from.value !== v && !typing) from.value = v;
  }
}

function morphChildren(from, to) {
  const want = Array.from(to.childNodes);
  let cur = from.firstChild;
  for (const t of want) {
    if (!cur) {
      from.appendChild(t);
      continue;
    }
    const next = cur.nextSibling;
    if (sameKind(cur, t)) {
      if (cur.nodeType === Node.ELEMENT_NODE) morph(cur, t);
      else if (cur.nodeValue !== t.nodeValue) cur.nodeValue = t.nodeValue;
    } else {
      from.replaceChild(t, cur);
    }
    cur = next;
  }
  while (cur) {
    const next = cur.nextSibling;
    from.removeChild(cur);
    cur = next;
  }
}

function sameKind(a, b) {
  if (a.nodeType !== b.nodeType || a.nodeName !== b.nodeName) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  return a.getAttribute('data-key') === b.getAttribute('data-key');
}

function syncAttributes(from, to) {
  for (const { name, value } of Array.from(to.attributes)) {
    if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  }
  for (const { name } of Array.from(from.attributes)) {
    if (name === 'open' && from.tagName === 'DETAILS') continue; // user's choice
    if (!to.hasAttribute(name)) from.removeAttribute(name);
  }
}

// ---- small view pieces -------------------------------------------------

export function badge(status, text) {
  return h('span', { class: 'badge', 'data-status': status || 'unknown' }, text || status || 'unknown');
}

export function link(href, text, attrs) {
  return h('a', { href, ...attrs }, text);
}

export function shortID(id) {
  return id ? id.slice(0, 8) : '';
}

// meter is a labelled bar: used of total in unit.
export function meter(used, total, unit, label) {
  const pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
  const cls = pct >= 90 ? 'high' : '';
  return h('div', { class: 'meter' },
    h('progress', { max: 100, value: pct, class: cls, 'aria-label': `${label}: ${used} of ${total} ${unit}` }),
    h('span', {}, `${fmtNum(used)} / ${fmtNum(total)} ${unit}`));
}

export function fmtNum(n) {
  return Number(n || 0).toLocaleString('en-US');
}

export function props(pairs) {
  const dl = h('dl', { class: 'props' });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    dl.append(h('dt', {}, k), h('dd', {}, v));
  }
  return dl;
}

// table renders rows under headers; cols are [title, cell(row), opts]
// with opts.num for numbers. key(row) gives rows an identity, so a
// row that moves is replaced, not patched into another's place.
export function table(caption, cols, rows, { empty = 'None.', key, rowAttrs } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, cols.map(([title, , o]) => h('th', { scope: 'col', class: o && o.num ? 'num' : null }, title)))),
      h('tbody', {}, rows.map((r) => h('tr', { 'data-key': key ? key(r) : null, ...(rowAttrs ? rowAttrs(r) : {}) },
        cols.map(([, cell, o]) => h('td', { class: o && o.num ? 'num' : null }, cell(r))))))));
}

// errorBox explains a failed read. A 403 names what the token lacks.
export function errorBox(err, what) {
  if (!err) return null;
  if (err.status === 403) {
    return h('div', { class: 'msg denied', role: 'alert', 'data-code': err.code || 'permission_denied' },
      h('p', {}, h('strong', {}, 'Permission denied'), what ? ` reading ${what}.` : '.'),
      err.capability ? h('p', { class: 'cap' }, `Missing capability: ${err.capability}`) : null,
      h('p', {}, err.message),
      h('p', { class: 'hint' }, 'Set a token with that capability under "ACL token" at the top.'));
  }
  return h('div', { class: 'msg error', role: 'alert', 'data-code': err.code || '' },
    h('p', {}, h('strong', {}, err.status === 404 ? 'Not found' : 'Error'), what ? ` reading ${what}:` : ':'),
    h('p', {}, err.message || String(err)));
}

// ---- time --------------------------------------------------------------

// toDate reads the API's times: Unix nanoseconds (numbers) or RFC 3339
// strings; the zero time is no time.
export function toDate(t) {
  if (t === undefined || t === null || t === 0 || t === '') return null;
  if (typeof t === 'number') return new Date(t / 1e6);
  if (typeof t === 'string' && t.startsWith('0001-')) return null;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function ago(t) {
  const d = toDate(t);
  if (!d) return '';
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  let text;
  if (s < 5) text = 'just now';
  else if (s < 60) text = `${s}s ago`;
  else if (s < 3600) text = `${Math.floor(s / 60)}m ago`;
  else if (s < 86400) text = `${Math.floor(s / 3600)}h ago`;
  else text = `${Math.floor(s / 86400)}d ago`;
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, text);
}

export function when(t) {
  const d = toDate(t);
  if (!d) return '';
  return h('time', { datetime: d.toISOString() }, d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
}

// duration formats nanoseconds.
export function duration(ns) {
  if (!ns) return '0s';
  const s = ns / 1e9;
  if (s < 1) return `${Math.round(ns / 1e6)}ms`;
  if (s < 60) return `${+s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${Math.round(s % 60) ? `${Math.round(s % 60)}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
}
