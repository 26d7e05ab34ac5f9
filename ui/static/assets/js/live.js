// Live keeps one page's data current without polling loops.
//
// A page names its sources (API paths) and, for the event stream, the
// topics that concern it. Live opens the stream first, then reads every
// source once the stream is subscribed: whatever changes after that
// arrives as an event, whatever changed before is in the read, so no
// change falls between the two. An event re-reads the sources whose
// topics it matches (coalesced, so a burst of events costs one read
// each). Sources without a topic (the Raft configuration, gossip
// members) are re-read on the stream's heartbeat, every 10 s.
//
// The stream is served by server agents only. On a client agent (400),
// or when the token may not open it (403), Live falls back to blocking
// queries: each source is re-read with ?index=<last X-Drover-Index>&
// wait=60s, so a request returns only when something changed. Errors
// back off up to 30 s; a query answered at once is not repeated for a
// second (the agent's cap on blocking queries answers at once).

import { request, streamLines, isAbort, q, ApiError } from './api.js';

const DEBOUNCE_MS = 40;
const MAX_BACKOFF_MS = 30000;
const SLOW_REFRESH_MS = 10000;

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new DOMException('stopped', 'AbortError'));
      return;
    }
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new DOMException('stopped', 'AbortError'));
    }, { once: true });
  });
}

export class Live {
  // sources(results) returns {name: {path, topics: [...]}}; it is asked
  // again after every update, so a source may depend on another's data
  // (an allocation's services). stream is {namespace, topics} or null.
  constructor({ sources, stream, onUpdate, onState }) {
    this.sourcesFn = sources;
    this.streamSpec = stream;
    this.onUpdate = onUpdate;
    this.onState = onState;
    this.results = {};
    this.sources = {};
    this.ctrl = new AbortController();
    this.pending = new Set();
    this.flushing = false;
    this.timer = 0;
    this.polling = false;
  }

  get signal() {
    return this.ctrl.signal;
  }

  start() {
    this.syncSources();
    this.refresh(Object.keys(this.sources), 0);
    if (this.streamSpec) this.runStream().catch(() => {});
    else this.startPolling();
  }

  stop() {
    this.ctrl.abort();
    clearTimeout(this.timer);
  }

  // reload re-reads every source now (after a write the page made).
  reload() {
    this.refresh(Object.keys(this.sources), 0);
  }

  syncSources() {
    const next = this.sourcesFn(this.results) || {};
    const added = [];
    for (const [name, src] of Object.entries(next)) {
      const old = this.sources[name];
      if (old && old.path === src.path) {
        // The same source: keep its identity, which a read in flight
        // and a blocking loop check to know they still matter.
        old.topics = src.topics;
        next[name] = old;
      } else {
        added.push(name);
        delete this.results[name];
      }
    }
    for (const name of Object.keys(this.results)) {
      if (!next[name]) delete this.results[name];
    }
    this.sources = next;
    return added;
  }

  refresh(names, delay = DEBOUNCE_MS) {
    for (const n of names) this.pending.add(n);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), delay);
  }

  async flush() {
    if (this.flushing || this.signal.aborted) return;
    this.flushing = true;
    try {
      while (this.pending.size && !this.signal.aborted) {
        const names = [...this.pending].filter((n) => this.sources[n]);
        this.pending.clear();
        await Promise.all(names.map((n) => this.fetchOne(n)));
        this.emit();
      }
    } catch (err) {
      if (!isAbort(err)) throw err;
    } finally {
      this.flushing = false;
    }
  }

  async fetchOne(name, suffix = '') {
    const src = this.sources[name];
    if (!src) return false;
    try {
      const r = await request(src.path + suffix, { signal: this.signal });
      if (this.sources[name] !== src) return false; // replaced meanwhile
      const old = this.results[name];
      this.results[name] = { data: r.data, index: r.index, error: null, next: r.headers.get('X-Drover-NextToken') || '' };
      return !old || old.index !== r.index || old.error || !r.index;
    } catch (err) {
      if (isAbort(err)) throw err;
      if (this.sources[name] === src) this.results[name] = { data: null, index: 0, error: err };
      return true;
    }
  }

  emit() {
    if (this.signal.aborted) return;
    const added = this.syncSources();
    if (added.length) {
      this.refresh(added, 0);
      if (this.polling) added.forEach((n) => this.blockLoop(n));
    }
    this.onUpdate(this.results);
  }

  setState(state) {
    if (!this.signal.aborted) this.onState(state);
  }

  async runStream() {
    const spec = this.streamSpec;
    const path = `/v1/event/stream${q({ topic: spec.topics, namespace: spec.namespace })}`;
    let backoff = 1000;
    while (!this.signal.aborted) {
      try {
        await streamLines(path, {
          signal: this.signal,
          onOpen: () => {
            backoff = 1000;
            this.setState('live');
            this.refresh(Object.keys(this.sources), 0);
          },
          onLine: (ev) => this.onEvent(ev),
        });
      } catch (err) {
        if (isAbort(err)) return;
        if (err instanceof ApiError && (err.status === 400 || err.status === 403 || err.status === 404)) {
          // Not a server agent, or the token may not subscribe: read
          // with blocking queries instead.
          this.startPolling();
          return;
        }
      }
      // The stream ended (agent restarting, fell behind) or could not
      // be opened: resubscribe after a pause; onOpen re-reads all.
      this.setState('reconnecting');
      try {
        await sleep(backoff, this.signal);
      } catch {
        return;
      }
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  onEvent(ev) {
    if (!ev || ev.Error) return; // an ending stream says why; we resubscribe
    const names = Object.entries(this.sources)
      .filter(([, src]) => (ev.Topic ? (src.topics || []).includes(ev.Topic) : !(src.topics || []).length))
      .map(([n]) => n);
    if (names.length) this.refresh(names);
  }

  startPolling() {
    if (this.polling) return;
    this.polling = true;
    this.setState('polling');
    for (const name of Object.keys(this.sources)) this.blockLoop(name);
  }

  async blockLoop(name) {
    const src = this.sources[name];
    let backoff = 1000;
    try {
      while (!this.signal.aborted && this.sources[name] === src) {
        const last = this.results[name];
        const started = Date.now();
        let changed;
        if (!last || !last.index || last.error) {
          // Not read yet, failed, or an endpoint without an index:
          // read plainly, at a gentle pace.
          if (last) await sleep(last.error ? backoff : SLOW_REFRESH_MS, this.signal);
          changed = await this.fetchOne(name);
          const now = this.results[name];
          backoff = now && now.error ? Math.min(backoff * 2, MAX_BACKOFF_MS) : 1000;
        } else {
          const sep = src.path.includes('?') ? '&' : '?';
          changed = await this.fetchOne(name, `${sep}index=${last.index}&wait=60s`);
          if (Date.now() - started < 1000) await sleep(1000, this.signal);
        }
        if (changed) this.emit();
      }
    } catch (err) {
      if (!isAbort(err)) throw err;
    }
  }
}
