// Cluster overview: servers with the leader and their Raft state,
// clients with status and resource use, and counts of jobs and
// allocations.

import { h, badge, link, table, fmtNum } from '../dom.js';
import { loading, ready, data, failure, section, usageByNode, usageMeters, nodeState, allocActive } from './common.js';

export default {
  nav: 'overview',
  title: () => 'Overview',
  sources: () => ({
    raft: { path: '/v1/operator/raft/configuration', topics: [] },
    members: { path: '/v1/agent/members', topics: [] },
    nodes: { path: '/v1/nodes', topics: ['Node'] },
    allocs: { path: '/v1/allocations?namespace=*', topics: ['Allocation'] },
    jobs: { path: '/v1/jobs?namespace=*', topics: ['Job'] },
  }),
  stream: () => ({ namespace: '*', topics: ['Node:*', 'Allocation:*', 'Job:*'] }),
  view(ctx, r) {
    if (!ready(r, 'raft', 'nodes', 'jobs', 'allocs')) return loading('Cluster');
    const servers = (data(r, 'raft', {}).Servers) || [];
    const members = (data(r, 'members', {}).Members) || [];
    const nodes = data(r, 'nodes', []);
    const jobs = data(r, 'jobs', []);
    const allocs = data(r, 'allocs', []);
    const usage = usageByNode(allocs);
    const leader = servers.find((s) => s.Leader);
    const count = (list, pred) => list.filter(pred).length;

    const memberOf = (s) => members.find((m) => (m.Tags && m.Tags.id === s.ID) || m.Name === s.Node);
    return [
      h('h1', {}, 'Cluster'),
      h('div', { class: 'cards' },
        card(servers.length, 'servers', leader ? `leader ${leader.Node || leader.Address}` : 'no leader'),
        card(`${count(nodes, (n) => n.Status === 'ready')} / ${nodes.length}`, 'clients ready'),
        card(count(jobs, (j) => j.Status === 'running'), 'jobs running',
          `${count(jobs, (j) => j.Status === 'pending')} pending, ${count(jobs, (j) => j.Status === 'dead')} dead`),
        card(count(allocs, (a) => a.ClientStatus === 'running'), 'allocations running',
          `${count(allocs, (a) => a.ClientStatus === 'failed')} failed`)),
      section('Servers',
        failure(r, 'raft', 'the Raft configuration'),
        failure(r, 'members', 'the gossip members'),
        table('Servers', [
          ['Name', (s) => s.Node || s.ID],
          ['Address', (s) => h('span', { class: 'mono' }, s.Address)],
          ['Raft', (s) => badge(s.Leader ? 'leader' : 'follower')],
          ['Voter', (s) => (s.Voter ? 'yes' : 'no')],
          ['Gossip', (s) => {
            const m = memberOf(s);
            return m ? badge(m.Status) : h('span', { class: 'empty' }, 'unknown');
          }],
        ], servers, { key: (s) => s.ID, empty: 'No servers in the Raft configuration.' }),
        data(r, 'raft', {}).Index ? h('p', { class: 'sub' }, `Raft configuration at index ${fmtNum(data(r, 'raft').Index)}.`) : null),
      section('Clients',
        failure(r, 'nodes', 'the nodes'),
        failure(r, 'allocs', 'the allocations'),
        table('Clients', [
          ['Name', (n) => link(`/ui/nodes/${encodeURIComponent(n.ID)}`, n.Name)],
          ['Datacenter', (n) => n.Datacenter],
          ['Status', (n) => badge(nodeState(n))],
          ['CPU', (n) => usageMeters(n, usage[n.ID])[0]],
          ['Memory', (n) => usageMeters(n, usage[n.ID])[1]],
          ['Allocations', (n) => fmtNum(allocs.filter((a) => a.NodeID === n.ID && allocActive(a)).length), { num: true }],
        ], nodes, { key: (n) => n.ID, empty: 'No client nodes have registered.' })),
    ];
  },
};

function card(n, label, detail) {
  return h('div', { class: 'card' }, h('span', { class: 'n' }, n), h('span', { class: 'l' }, label),
    detail ? h('div', { class: 'l' }, detail) : null);
}
