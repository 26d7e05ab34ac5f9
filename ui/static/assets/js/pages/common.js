// Pieces several pages share.

import { h, errorBox, meter } from '../dom.js';

export function loading(title) {
  return [h('h1', {}, title), h('p', { class: 'empty', role: 'status' }, 'Loading…')];
}

// ready reports whether every named source has answered at least once.
export function ready(results, ...names) {
  return names.every((n) => results[n]);
}

// data returns a source's data, or fallback when it failed or is not in.
export function data(results, name, fallback) {
  const r = results[name];
  return r && !r.error && r.data !== null && r.data !== undefined ? r.data : fallback;
}

export function failure(results, name, what) {
  const r = results[name];
  return r && r.error ? errorBox(r.error, what) : null;
}

// namespace is the page's ?namespace=, default "default".
export function namespace(ctx) {
  return ctx.query.get('namespace') || 'default';
}

export function section(title, ...body) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...body);
}

// A client status that still holds resources on its node.
export function allocActive(a) {
  return a.ClientStatus === 'pending' || a.ClientStatus === 'running';
}

// usageByNode sums the CPU and memory of the active allocations on
// each node.
export function usageByNode(allocs) {
  const out = {};
  for (const a of allocs || []) {
    if (!allocActive(a) || !a.AllocatedResources) continue;
    const u = out[a.NodeID] || (out[a.NodeID] = { cpu: 0, mem: 0, allocs: 0 });
    u.allocs++;
    for (const t of Object.values(a.AllocatedResources.Tasks || {})) {
      u.cpu += (t.Cpu && t.Cpu.CpuShares) || 0;
      u.mem += (t.Memory && t.Memory.MemoryMB) || 0;
    }
  }
  return out;
}

export function nodeCapacity(node) {
  const r = node.NodeResources || {};
  const reserved = node.ReservedResources || {};
  return {
    cpu: ((r.Cpu && r.Cpu.CpuShares) || 0) - ((reserved.Cpu && reserved.Cpu.CpuShares) || 0),
    mem: ((r.Memory && r.Memory.MemoryMB) || 0) - ((reserved.Memory && reserved.Memory.MemoryMB) || 0),
  };
}

export function usageMeters(node, usage) {
  const cap = nodeCapacity(node);
  const u = usage || { cpu: 0, mem: 0 };
  return [meter(u.cpu, cap.cpu, 'MHz', `CPU of ${node.Name}`), meter(u.mem, cap.mem, 'MiB', `Memory of ${node.Name}`)];
}

// nodeState is the status a node's badge shows: down and ready as the
// servers say, draining and ineligible on top of ready.
export function nodeState(n) {
  if (n.Status !== 'ready') return n.Status;
  if (n.Drain || n.DrainStrategy) return 'draining';
  if (n.SchedulingEligibility === 'ineligible') return 'ineligible';
  return 'ready';
}

// actionError shows the last failed write of the page, if any.
export function actionError(ctx) {
  return ctx.state.actionError ? errorBox(ctx.state.actionError, null) : null;
}

// setQuery changes the page's query string. With restart the page's
// sources are read anew (they depend on it); without, the page is only
// drawn again (a filter applied in the browser).
export function setQuery(ctx, changes, restart) {
  const url = new URL(window.location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === '') url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  if (restart) {
    ctx.navigate(url.href, { replace: true });
    return;
  }
  window.history.replaceState(null, '', url);
  ctx.query = url.searchParams;
  ctx.rerender();
}
