// Jobs: the list (namespace and status filters) and one job's detail
// (groups by status, the deployment, placement failures, allocations,
// versions with their diffs).

import { h, badge, link, table, props, ago, shortID, fmtNum, duration } from '../dom.js';
import { q } from '../api.js';
import { loading, ready, data, failure, section, namespace, setQuery } from './common.js';

const STATUSES = ['running', 'pending', 'dead'];

export const jobsPage = {
  nav: 'jobs',
  title: () => 'Jobs',
  sources: (ctx) => ({
    jobs: { path: `/v1/jobs${q({ namespace: ctx.query.get('namespace') || '*' })}`, topics: ['Job'] },
    namespaces: { path: '/v1/namespaces', topics: [] },
  }),
  stream: (ctx) => ({ namespace: ctx.query.get('namespace') || '*', topics: ['Job:*'] }),
  view(ctx, r) {
    const ns = ctx.query.get('namespace') || '*';
    const status = ctx.query.get('status') || '';
    const filter = (ctx.query.get('filter') || '').toLowerCase();
    const names = new Set(['default', ...(data(r, 'namespaces', []) || []).map((n) => n.Name)]);
    if (ns !== '*') names.add(ns);
    const filters = h('div', { class: 'filters', role: 'search' },
      h('label', {}, 'Namespace',
        h('select', { 'data-action': 'namespace', value: ns },
          h('option', { value: '*' }, 'all namespaces'),
          [...names].sort().map((n) => h('option', { value: n }, n)))),
      h('label', {}, 'Status',
        h('select', { 'data-action': 'status', value: status },
          h('option', { value: '' }, 'any status'),
          STATUSES.map((s) => h('option', { value: s }, s)))),
      h('label', {}, 'Name contains',
        h('input', { type: 'search', 'data-action': 'filter', value: ctx.query.get('filter') || '', placeholder: 'filter' })));
    if (!ready(r, 'jobs')) return [h('h1', {}, 'Jobs'), filters, ...loading('').slice(1)];
    const all = data(r, 'jobs', []);
    const jobs = all
      .filter((j) => !status || j.Status === status)
      .filter((j) => !filter || j.ID.toLowerCase().includes(filter) || (j.Name || '').toLowerCase().includes(filter))
      .sort((a, b) => a.ID.localeCompare(b.ID) || a.Namespace.localeCompare(b.Namespace));
    return [
      h('h1', {}, 'Jobs'),
      filters,
      failure(r, 'jobs', 'the jobs'),
      h('p', { class: 'sub', role: 'status' }, `${jobs.length} of ${all.length} jobs`),
      table('Jobs', [
        ['ID', (j) => link(`/ui/jobs/${encodeURIComponent(j.ID)}${q({ namespace: j.Namespace })}`, j.ID)],
        ['Namespace', (j) => j.Namespace],
        ['Type', (j) => j.Type],
        ['Status', (j) => badge(j.Status)],
        ['Priority', (j) => j.Priority, { num: true }],
        ['Version', (j) => j.Version, { num: true }],
        ['Submitted', (j) => ago(j.SubmitTime)],
      ], jobs, {
        key: (j) => `${j.Namespace}/${j.ID}`,
        rowAttrs: (j) => ({ 'data-job': j.ID, 'data-status': j.Status }),
        empty: all.length ? 'No job matches the filters.' : 'No jobs. Run one with: drover job run FILE.hcl',
      }),
    ];
  },
  actions: {
    namespace: (ctx, el) => setQuery(ctx, { namespace: el.value === '*' ? '' : el.value }, true),
    status: (ctx, el) => setQuery(ctx, { status: el.value }, false),
    filter: (ctx, el) => setQuery(ctx, { filter: el.value }, false),
  },
};

export const jobPage = {
  nav: 'jobs',
  title: (ctx) => `Job ${ctx.params[0]}`,
  sources(ctx) {
    const id = encodeURIComponent(ctx.params[0]);
    const nsq = q({ namespace: namespace(ctx) });
    return {
      job: { path: `/v1/job/${id}${nsq}`, topics: ['Job'] },
      allocs: { path: `/v1/job/${id}/allocations${nsq}`, topics: ['Allocation'] },
      deployment: { path: `/v1/job/${id}/deployment${nsq}`, topics: ['Deployment'] },
      evals: { path: `/v1/job/${id}/evaluations${nsq}`, topics: ['Evaluation'] },
      versions: { path: `/v1/job/${id}/versions${q({ diffs: 'true', namespace: namespace(ctx) })}`, topics: ['Job'] },
    };
  },
  stream(ctx) {
    const id = ctx.params[0];
    return { namespace: namespace(ctx), topics: [`Job:${id}`, `Allocation:${id}`, `Deployment:${id}`, `Evaluation:${id}`] };
  },
  view(ctx, r) {
    const id = ctx.params[0];
    if (!ready(r, 'job')) return loading(id);
    const job = data(r, 'job', null);
    if (!job) return [h('h1', {}, id), failure(r, 'job', `job ${id}`)];
    const allocs = (data(r, 'allocs', []) || []).slice().sort(byActiveThenName);
    const evals = (data(r, 'evals', []) || []).slice().sort((a, b) => b.CreateIndex - a.CreateIndex);
    return [
      h('h1', {}, job.ID, ' ', h('span', { id: 'job-status' }, badge(job.Status))),
      props([
        ['Namespace', job.Namespace],
        ['Type', job.Type],
        ['Priority', job.Priority],
        ['Version', `${job.Version}${job.Stable ? ' (stable)' : ''}`],
        ['Submitted', ago(job.SubmitTime)],
        ['Datacenters', (job.Datacenters || []).join(', ')],
        ['Stopped', job.Stop ? 'yes: stopped by a user' : null],
        ['Status description', job.StatusDescription],
      ]),
      section('Task groups', failure(r, 'allocs', 'the allocations'), groupsTable(job, allocs, evals.find(decided))),
      section('Deployment', failure(r, 'deployment', 'the deployment'), deploymentView(data(r, 'deployment', null))),
      section('Placement failures', failure(r, 'evals', 'the evaluations'), placementFailures(evals)),
      section('Allocations', allocTable(allocs)),
      section('Versions', failure(r, 'versions', 'the versions'), versionsView(data(r, 'versions', null))),
    ];
  },
};

function byActiveThenName(a, b) {
  const rank = (x) => (x.ClientStatus === 'running' ? 0 : x.ClientStatus === 'pending' ? 1 : 2);
  return rank(a) - rank(b) || b.CreateIndex - a.CreateIndex;
}

const COUNTED = ['pending', 'running', 'complete', 'failed', 'lost'];

function groupsTable(job, allocs, latestEval) {
  const queued = (latestEval && latestEval.QueuedAllocations) || {};
  const rows = (job.TaskGroups || []).map((g) => {
    const counts = Object.fromEntries(COUNTED.map((s) => [s, 0]));
    for (const a of allocs) if (a.TaskGroup === g.Name && counts[a.ClientStatus] !== undefined) counts[a.ClientStatus]++;
    return { g, counts, queued: queued[g.Name] || 0 };
  });
  return table('Task groups', [
    ['Group', (x) => x.g.Name],
    ['Desired', (x) => x.g.Count, { num: true }],
    ['Queued', (x) => x.queued, { num: true }],
    ['Starting', (x) => x.counts.pending, { num: true }],
    ['Running', (x) => h('span', { 'data-count': 'running' }, x.counts.running), { num: true }],
    ['Complete', (x) => x.counts.complete, { num: true }],
    ['Failed', (x) => x.counts.failed, { num: true }],
    ['Lost', (x) => x.counts.lost, { num: true }],
  ], rows, { key: (x) => x.g.Name, rowAttrs: (x) => ({ 'data-group': x.g.Name }) });
}

function deploymentView(d) {
  if (!d) return h('p', { class: 'empty' }, 'This job has no deployment (a job without an update block, or a batch job).');
  const groups = Object.entries(d.TaskGroups || {}).sort(([a], [b]) => a.localeCompare(b));
  return h('div', { 'data-deployment': d.Status },
    props([
      ['ID', h('span', { class: 'mono' }, shortID(d.ID))],
      ['Job version', d.JobVersion],
      ['Status', badge(d.Status === 'failed' ? 'failed-deployment' : d.Status, d.Status)],
      ['Description', d.StatusDescription],
      ['Started', ago(d.CreateTime)],
    ]),
    table('Deployment progress', [
      ['Group', ([n]) => n],
      ['Healthy', ([, s]) => progress(s.HealthyAllocs, s.DesiredTotal, 'healthy')],
      ['Placed', ([, s]) => `${s.PlacedAllocs} / ${s.DesiredTotal}`, { num: true }],
      ['Unhealthy', ([, s]) => s.UnhealthyAllocs, { num: true }],
      ['Canaries', ([, s]) => (s.DesiredCanaries ? `${(s.PlacedCanaries || []).length} / ${s.DesiredCanaries}${s.Promoted ? ' (promoted)' : ''}` : '-')],
      ['Progress deadline', ([, s]) => (s.ProgressDeadline ? duration(s.ProgressDeadline) : '-')],
    ], groups, { key: ([n]) => n }),
    (d.History || []).length ? h('details', { class: 'more' }, h('summary', {}, `History (${d.History.length})`),
      h('ul', {}, d.History.map((e) => h('li', {}, ago(e.Time), ' ', e.Message)))) : null);
}

function progress(n, total, what) {
  const pct = total > 0 ? Math.round((n / total) * 100) : 0;
  return h('div', { class: 'meter' },
    h('progress', { max: 100, value: pct, class: pct === 100 ? 'ok' : '', 'aria-label': `${n} of ${total} ${what}` }),
    h('span', {}, `${n} / ${total}`));
}

// decided: an evaluation the scheduler has finished with (a blocked
// one is a placeholder waiting for capacity).
function decided(e) {
  return e.Status !== 'blocked' && e.Status !== 'pending';
}

function placementFailures(evals) {
  const blocked = evals.find((e) => e.Status === 'blocked');
  const latest = evals.find(decided);
  const failed = latest && latest.FailedTGAllocs ? Object.entries(latest.FailedTGAllocs) : [];
  if (!failed.length) return h('p', { class: 'empty' }, 'None: the latest evaluation placed everything it was asked to.');
  return h('div', {},
    blocked ? h('p', { class: 'msg note' }, 'A blocked evaluation waits for capacity: the allocations are placed as soon as a node can take them.') : null,
    failed.sort(([a], [b]) => a.localeCompare(b)).map(([group, m]) => h('div', { class: 'msg error', 'data-failed-group': group },
      h('p', {}, h('strong', {}, `Group ${group}: `), `${(m.CoalescedFailures || 0) + 1} allocation(s) could not be placed.`),
      h('ul', {}, explain(m).map((line) => h('li', {}, line))))));
}

// explain turns an AllocMetric into sentences.
export function explain(m) {
  const out = [`${m.NodesEvaluated || 0} node(s) evaluated, ${m.NodesFiltered || 0} filtered out, ${m.NodesExhausted || 0} without enough room.`];
  for (const [dc, n] of Object.entries(m.NodesAvailable || {})) out.push(`${n} node(s) available in datacenter ${dc}.`);
  for (const [c, n] of Object.entries(m.ConstraintFiltered || {})) out.push(`Constraint ${c} filtered ${n} node(s).`);
  for (const [c, n] of Object.entries(m.ClassFiltered || {})) out.push(`Node class ${c}: ${n} node(s) filtered.`);
  for (const [d, n] of Object.entries(m.DimensionExhausted || {})) out.push(`Resource ${d} exhausted on ${n} node(s).`);
  for (const [c, n] of Object.entries(m.ClassExhausted || {})) out.push(`Node class ${c}: ${n} node(s) exhausted.`);
  for (const line of m.QuotaExhausted || []) out.push(line);
  return out;
}

export function allocTable(allocs, { showJob = false } = {}) {
  return table('Allocations', [
    ['ID', (a) => link(`/ui/allocations/${encodeURIComponent(a.ID)}`, shortID(a.ID), { class: 'mono', title: a.ID })],
    showJob ? ['Job', (a) => link(`/ui/jobs/${encodeURIComponent(a.JobID)}${q({ namespace: a.Namespace })}`, a.JobID)] : null,
    ['Name', (a) => a.Name],
    showJob ? null : ['Node', (a) => link(`/ui/nodes/${encodeURIComponent(a.NodeID)}`, a.NodeName || shortID(a.NodeID))],
    ['Version', (a) => a.JobVersion, { num: true }],
    ['Desired', (a) => a.DesiredStatus],
    ['Status', (a) => badge(a.ClientStatus)],
    ['Created', (a) => ago(a.CreateTime)],
  ].filter(Boolean), allocs, {
    key: (a) => a.ID,
    rowAttrs: (a) => ({ 'data-alloc': a.ID, 'data-status': a.ClientStatus }),
    empty: 'No allocations.',
  });
}

function versionsView(v) {
  if (!v) return null;
  const versions = v.Versions || [];
  const diffs = v.Diffs || [];
  if (!versions.length) return h('p', { class: 'empty' }, 'No versions kept.');
  return h('div', {}, versions.map((job, i) => {
    const d = diffs[i];
    const changes = d ? countChanges(d) : 0;
    return h('details', { class: 'more', 'data-key': `v${job.Version}`, open: i === 0 ? true : null },
      h('summary', {}, `Version ${job.Version}`, job.Stable ? ' · stable' : '', ' · submitted ', ago(job.SubmitTime),
        i + 1 < versions.length ? ` · ${fmtNum(changes)} change(s) from version ${versions[i + 1].Version}` : ' · first kept version'),
      d ? diffView(d) : h('p', { class: 'empty' }, 'No earlier version to compare with.'));
  }));
}

const MARK = { Added: '+', Deleted: '-', Edited: '~', None: ' ' };

function countChanges(d) {
  let n = 0;
  const walk = (x) => {
    for (const f of x.Fields || []) if (f.Type !== 'None') n++;
    for (const o of x.Objects || []) walk(o);
    for (const g of x.TaskGroups || []) walk(g);
    for (const t of x.Tasks || []) walk(t);
  };
  walk(d);
  return n;
}

function diffView(d) {
  const items = diffItems(d);
  if (!items.length) return h('p', { class: 'empty' }, 'No changes to the job specification.');
  return h('ul', { class: 'diff' }, items);
}

function diffItems(x) {
  const out = [];
  for (const f of x.Fields || []) {
    if (f.Type === 'None') continue;
    out.push(h('li', { 'data-diff': f.Type }, h('span', { class: 'mark', 'aria-label': f.Type }, MARK[f.Type]), `${f.Name}: `,
      f.Type !== 'Added' ? h('span', { class: 'old' }, JSON.stringify(f.Old)) : null,
      f.Type === 'Edited' ? ' → ' : null,
      f.Type !== 'Deleted' ? h('span', { class: 'new' }, JSON.stringify(f.New)) : null,
      (f.Annotations || []).length ? h('span', { class: 'ann' }, ` (${f.Annotations.join(', ')})`) : null));
  }
  const nested = [
    ...(x.Objects || []).map((o) => [o, o.Name]),
    ...(x.TaskGroups || []).map((g) => [g, `group "${g.Name}"`]),
    ...(x.Tasks || []).map((t) => [t, `task "${t.Name}"`]),
  ];
  for (const [o, name] of nested) {
    if (o.Type === 'None') continue;
    const inner = diffItems(o);
    const updates = o.Updates ? Object.entries(o.Updates).map(([k, n]) => `${n} ${k}`).join(', ') : '';
    out.push(h('li', { 'data-diff': o.Type }, h('span', { class: 'mark', 'aria-label': o.Type }, MARK[o.Type]), name,
      (o.Annotations || []).length ? h('span', { class: 'ann' }, ` (${o.Annotations.join(', ')})`) : null,
      updates ? h('span', { class: 'ann' }, ` (${updates})`) : null,
      inner.length ? h('ul', {}, inner) : null));
  }
  return out;
}
