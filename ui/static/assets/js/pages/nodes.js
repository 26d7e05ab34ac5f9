// Nodes: the list with status and resource use, and one node's detail
// with its drain and eligibility switches.

import { h, badge, link, table, props, ago, shortID, duration } from '../dom.js';
import { request, isAbort } from '../api.js';
import { loading, ready, data, failure, section, usageByNode, usageMeters, nodeState, actionError } from './common.js';
import { allocTable } from './jobs.js';

function driversSummary(drivers) {
  const names = Object.keys(drivers || {}).sort();
  if (!names.length) return h('span', { class: 'empty' }, 'none');
  return names.map((n, i) => [i ? ', ' : '', drivers[n].Healthy ? n : h('span', { class: 'badge', 'data-status': 'unhealthy', title: drivers[n].HealthDescription || '' }, `${n} (unhealthy)`)]);
}

export const nodesPage = {
  nav: 'nodes',
  title: () => 'Nodes',
  sources: () => ({
    nodes: { path: '/v1/nodes', topics: ['Node'] },
    allocs: { path: '/v1/allocations?namespace=*', topics: ['Allocation'] },
  }),
  stream: () => ({ namespace: '*', topics: ['Node:*', 'Allocation:*'] }),
  view(ctx, r) {
    if (!ready(r, 'nodes')) return loading('Nodes');
    const nodes = (data(r, 'nodes', []) || []).slice().sort((a, b) => a.Name.localeCompare(b.Name));
    const usage = usageByNode(data(r, 'allocs', []));
    return [
      h('h1', {}, 'Nodes'),
      failure(r, 'nodes', 'the nodes'),
      failure(r, 'allocs', 'the allocations (resource use)'),
      table('Nodes', [
        ['Name', (n) => link(`/ui/nodes/${encodeURIComponent(n.ID)}`, n.Name, { title: n.ID })],
        ['Address', (n) => h('span', { class: 'mono' }, n.Address || n.HTTPAddr || '')],
        ['Datacenter', (n) => n.Datacenter],
        ['Status', (n) => badge(nodeState(n))],
        ['Eligibility', (n) => n.SchedulingEligibility],
        ['Drivers', (n) => driversSummary(n.Drivers)],
        ['CPU', (n) => usageMeters(n, usage[n.ID])[0]],
        ['Memory', (n) => usageMeters(n, usage[n.ID])[1]],
      ], nodes, { key: (n) => n.ID, rowAttrs: (n) => ({ 'data-node': n.ID }), empty: 'No client nodes have registered.' }),
    ];
  },
};

const DEADLINES = [['10m', 600e9], ['1h', 3600e9], ['4h', 14400e9], ['none', 0]];

export const nodePage = {
  nav: 'nodes',
  title: (ctx, r) => {
    const n = data(r, 'node', null);
    return `Node ${n ? n.Name : shortID(ctx.params[0])}`;
  },
  sources(ctx) {
    const id = encodeURIComponent(ctx.params[0]);
    return {
      node: { path: `/v1/node/${id}`, topics: ['Node'] },
      allocs: { path: `/v1/node/${id}/allocations`, topics: ['Allocation'] },
    };
  },
  stream: (ctx) => ({ namespace: '*', topics: [`Node:${ctx.params[0]}`, 'Allocation:*'] }),
  view(ctx, r) {
    const id = ctx.params[0];
    if (!ready(r, 'node')) return loading(`Node ${shortID(id)}`);
    const n = data(r, 'node', null);
    if (!n) return [h('h1', {}, `Node ${shortID(id)}`), failure(r, 'node', `node ${id}`)];
    const allocs = (data(r, 'allocs', []) || []).slice().sort((a, b) => b.CreateIndex - a.CreateIndex);
    const usage = usageByNode(allocs)[n.ID];
    const draining = !!n.DrainStrategy;
    const eligible = n.SchedulingEligibility === 'eligible';
    const busy = ctx.state.busy;
    const drivers = Object.entries(n.Drivers || {}).sort(([a], [b]) => a.localeCompare(b));
    const attrs = Object.entries(n.Attributes || {}).sort(([a], [b]) => a.localeCompare(b));
    return [
      h('h1', {}, `Node ${n.Name} `, h('span', { id: 'node-status' }, badge(nodeState(n)))),
      props([
        ['ID', h('span', { class: 'mono' }, n.ID)],
        ['Address', h('span', { class: 'mono' }, n.HTTPAddr)],
        ['Datacenter', n.Datacenter],
        ['Class', n.NodeClass],
        ['Pool', n.NodePool || 'default'],
        ['Status', [n.Status, n.StatusDescription ? ` (${n.StatusDescription})` : '', ' · updated ', ago(n.StatusUpdatedAt)]],
        ['CPU', usageMeters(n, usage)[0]],
        ['Memory', usageMeters(n, usage)[1]],
      ]),
      section('Scheduling',
        actionError(ctx),
        props([
          ['Eligibility', badge(n.SchedulingEligibility)],
          ['Drain', draining ? [
            'draining since ', ago(n.DrainStrategy.StartedAt),
            n.DrainStrategy.Deadline > 0 ? `, deadline ${duration(n.DrainStrategy.Deadline)}` : ', no deadline',
            n.DrainStrategy.IgnoreSystemJobs ? ', system jobs stay' : '',
          ] : 'not draining'],
        ]),
        h('div', { class: 'row' },
          h('button', {
            type: 'button', 'data-action': 'eligibility', 'data-eligible': eligible ? 'false' : 'true', disabled: busy || (draining && !eligible) ? true : null,
          }, eligible ? 'Mark ineligible' : 'Mark eligible'),
          draining
            ? h('button', { type: 'button', 'data-action': 'drain-stop', disabled: busy ? true : null }, 'Stop drain (mark eligible)')
            : [
              h('label', {}, 'Deadline ', h('select', { id: 'drain-deadline', value: ctx.state.deadline || '1h', 'data-action': 'deadline' },
                DEADLINES.map(([l]) => h('option', { value: l }, l === 'none' ? 'no deadline' : l)))),
              h('button', { type: 'button', class: 'secondary', 'data-action': 'drain-start', disabled: busy ? true : null }, 'Drain node'),
            ]),
        draining && !eligible ? h('p', { class: 'hint' }, 'A draining node stays ineligible until its drain stops.') : null),
      section('Drivers', table('Drivers', [
        ['Driver', ([d]) => d],
        ['Detected', ([, i]) => (i.Detected ? 'yes' : 'no')],
        ['Health', ([, i]) => badge(i.Healthy ? 'healthy' : 'unhealthy')],
        ['Description', ([, i]) => i.HealthDescription || ''],
        ['Updated', ([, i]) => ago(i.UpdateTime)],
      ], drivers, { key: ([d]) => d, empty: 'No drivers fingerprinted.' })),
      section('Allocations', failure(r, 'allocs', 'the allocations'), allocTable(allocs, { showJob: true })),
      section('Attributes', h('details', { class: 'more' }, h('summary', {}, `${attrs.length} attributes`),
        table('Attributes', [['Name', ([k]) => h('span', { class: 'mono' }, k)], ['Value', ([, v]) => v]], attrs, { key: ([k]) => k })),
      Object.keys(n.Meta || {}).length ? props(Object.entries(n.Meta).sort()) : null),
    ];
  },
  actions: {
    deadline: (ctx, el) => {
      ctx.state.deadline = el.value;
    },
    eligibility: (ctx, el) => write(ctx, 'eligibility', { NodeID: ctx.params[0], Eligibility: el.dataset.eligible === 'true' ? 'eligible' : 'ineligible' }),
    'drain-stop': (ctx) => write(ctx, 'drain', { NodeID: ctx.params[0], DrainSpec: null, MarkEligible: true }),
    'drain-start': (ctx) => {
      const label = ctx.state.deadline || '1h';
      const deadline = (DEADLINES.find(([l]) => l === label) || DEADLINES[1])[1];
      // eslint-disable-next-line no-alert
      if (!window.confirm('Drain this node? Its allocations move to other nodes and it takes no new ones.')) return null;
      return write(ctx, 'drain', { NodeID: ctx.params[0], DrainSpec: { Deadline: deadline, IgnoreSystemJobs: false }, MarkEligible: false });
    },
  },
};

// write sends a node update with the user's token; the page updates
// from the event stream (or its blocking query) when the write lands.
async function write(ctx, what, body) {
  ctx.state.busy = true;
  ctx.state.actionError = null;
  ctx.rerender();
  try {
    await request(`/v1/node/${encodeURIComponent(ctx.params[0])}/${what}`, { method: 'PUT', body, signal: ctx.signal });
  } catch (err) {
    if (isAbort(err)) return;
    ctx.state.actionError = err;
  } finally {
    ctx.state.busy = false;
    ctx.rerender();
  }
}
