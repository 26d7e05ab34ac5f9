// The UI's shell: client-side routing under /ui/, the token form, the
// live indicator, and running one page at a time (pages/*.js).

import { h, morph } from './dom.js';
import { getToken, setToken, isAbort } from './api.js';
import { Live } from './live.js';
import overview from './pages/overview.js';
import { jobsPage, jobPage } from './pages/jobs.js';
import allocPage from './pages/alloc.js';
import { nodesPage, nodePage } from './pages/nodes.js';
import { servicesPage, servicePage } from './pages/services.js';
import { variablesPage, variablePage } from './pages/variables.js';

const routes = [
  [/^\/ui\/?$/, overview],
  [/^\/ui\/jobs\/?$/, jobsPage],
  [/^\/ui\/jobs\/([^/]+)$/, jobPage],
  [/^\/ui\/allocations\/([^/]+)$/, allocPage],
  [/^\/ui\/nodes\/?$/, nodesPage],
  [/^\/ui\/nodes\/([^/]+)$/, nodePage],
  [/^\/ui\/services\/?$/, servicesPage],
  [/^\/ui\/services\/([^/]+)$/, servicePage],
  [/^\/ui\/variables\/?$/, variablesPage],
  [/^\/ui\/variables\/(.+)$/, variablePage],
];

const notFound = {
  nav: '',
  title: () => 'Not found',
  sources: () => ({}),
  stream: () => null,
  view: () => [h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '/ui/' }, 'Go to the overview'), '.')],
};

const main = document.getElementById('main');
// Whether this agent serves the event stream (a server); the agent says
// so in index.html. Elsewhere pages follow with blocking queries.
const eventStream = (document.querySelector('meta[name="drover-event-stream"]') || {}).content !== 'false';
const liveEl = document.getElementById('live');
let current = null; // {page, ctx, live}

function match(pathname) {
  for (const [re, page] of routes) {
    const m = re.exec(pathname);
    if (m) return { page, params: m.slice(1).map(decodeURIComponent) };
  }
  return { page: notFound, params: [] };
}

function setLive(state) {
  liveEl.dataset.state = state;
  liveEl.textContent = {
    live: 'live',
    polling: 'live (blocking queries)',
    connecting: 'connecting',
    reconnecting: 'reconnecting',
  }[state] || state;
}

function render() {
  if (!current) return;
  const { page, ctx, live } = current;
  let content;
  try {
    content = page.view(ctx, live ? live.results : {});
  } catch (err) {
    content = [h('h1', {}, 'This page failed'), h('pre', {}, String(err && err.stack ? err.stack : err))];
    console.warn('render failed', err); // eslint-disable-line no-console
  }
  const fresh = h('main', { id: 'main', tabindex: '-1' }, content);
  morph(main, fresh);
  document.title = `${page.title(ctx, live ? live.results : {})} · Drover`;
  if (page.afterRender) page.afterRender(ctx, main);
}

function start(focus) {
  if (current) {
    if (current.live) current.live.stop();
    if (current.page.unmount) current.page.unmount(current.ctx);
  }
  const url = new URL(window.location.href);
  const { page, params } = match(url.pathname);
  const ctx = {
    params,
    query: url.searchParams,
    state: {},
    navigate,
    rerender: render,
    reload: () => current && current.live && current.live.reload(),
  };
  current = { page, ctx, live: null };
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === page.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const live = new Live({
    sources: (results) => page.sources(ctx, results),
    stream: eventStream ? page.stream(ctx) : null,
    onUpdate: render,
    onState: setLive,
  });
  current.live = live;
  ctx.signal = live.signal;
  render();
  if (focus) main.focus({ preventScroll: true });
  live.start();
  if (page.mount) page.mount(ctx, main);
}

export function navigate(href, { replace = false } = {}) {
  const url = new URL(href, window.location.href);
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  start(!replace);
  if (!replace) window.scrollTo(0, 0);
}

// Links inside the UI change the page without a reload.
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[href]');
  if (a && !a.target && !a.hasAttribute('download')) {
    const url = new URL(a.href, window.location.href);
    if (url.origin === window.location.origin && (url.pathname.startsWith('/ui/') || url.pathname === '/ui')) {
      if (url.pathname === window.location.pathname && url.search === window.location.search && url.hash) return;
      ev.preventDefault();
      navigate(url.href);
      return;
    }
  }
  const btn = ev.target.closest('[data-action]');
  if (btn && btn.tagName === 'BUTTON') runAction(btn, ev);
});

// Selects and inputs with data-action (filters) act on change/input.
for (const type of ['change', 'input']) {
  main.addEventListener(type, (ev) => {
    const el = ev.target.closest('[data-action]');
    if (!el || el.tagName === 'BUTTON') return;
    if (type === 'input' && el.tagName === 'SELECT') return;
    if (type === 'change' && el.tagName === 'INPUT' && el.type === 'search') return;
    runAction(el, ev);
  });
}

function runAction(el, ev) {
  if (!current) return;
  const fn = current.page.actions && current.page.actions[el.dataset.action];
  if (!fn) return;
  ev.preventDefault();
  Promise.resolve(fn(current.ctx, el, ev)).catch((err) => {
    if (!isAbort(err)) {
      current.ctx.state.actionError = err;
      render();
    }
  });
}

window.addEventListener('popstate', () => start(true));

// ---- the token ---------------------------------------------------------

const tokenBox = document.getElementById('token');
const tokenInput = document.getElementById('token-input');
const tokenSummary = document.getElementById('token-summary');

function showToken() {
  const t = getToken();
  if (t) {
    tokenBox.dataset.set = '';
    tokenSummary.textContent = `ACL token …${t.slice(-4)}`;
  } else {
    delete tokenBox.dataset.set;
    tokenSummary.textContent = 'ACL token';
  }
}

document.getElementById('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
  tokenBox.open = false;
  showToken();
  start(false);
});
document.getElementById('token-clear').addEventListener('click', () => {
  setToken('');
  tokenInput.value = '';
  tokenBox.open = false;
  showToken();
  start(false);
});
tokenBox.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') {
    tokenBox.open = false;
    tokenBox.querySelector('summary').focus();
  }
});

showToken();
start(false);
