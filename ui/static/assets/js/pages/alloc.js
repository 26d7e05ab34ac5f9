// One allocation: task states and events, resources, placement scores,
// checks and service instances, and the task's logs followed live
// through /v1/client/fs/logs (the agent proxies to the node that runs
// the allocation).

import { h, badge, link, table, props, ago, when, shortID, errorBox } from '../dom.js';
import { q, stream, isAbort } from '../api.js';
import { loading, ready, data, failure, section } from './common.js';
import { explain } from './jobs.js';

// The log view starts this far back from the end and keeps at most
// MAX_LOG characters (older output scrolls away).
const LOG_TAIL_BYTES = 64 * 1024;
const MAX_LOG = 512 * 1024;

function groupServices(alloc) {
  const job = alloc && alloc.Job;
  const group = job && (job.TaskGroups || []).find((g) => g.Name === alloc.TaskGroup);
  if (!group) return [];
  const names = new Set((group.Services || []).map((s) => s.Name));
  for (const t of group.Tasks || []) for (const s of t.Services || []) names.add(s.Name);
  return [...names].sort();
}

export default {
  nav: 'jobs',
  title: (ctx) => `Allocation ${shortID(ctx.params[0])}`,
  sources(ctx, results) {
    const id = encodeURIComponent(ctx.params[0]);
    const out = { alloc: { path: `/v1/allocation/${id}`, topics: ['Allocation'] } };
    const alloc = data(results || {}, 'alloc', null);
    for (const name of groupServices(alloc)) {
      out[`svc:${name}`] = { path: `/v1/service/${encodeURIComponent(name)}${q({ namespace: alloc.Namespace })}`, topics: ['Allocation'] };
    }
    return out;
  },
  stream: (ctx) => ({ namespace: '*', topics: [`Allocation:${ctx.params[0]}`] }),
  view(ctx, r) {
    const id = ctx.params[0];
    if (!ready(r, 'alloc')) return loading(`Allocation ${shortID(id)}`);
    const a = data(r, 'alloc', null);
    if (!a) return [h('h1', {}, `Allocation ${shortID(id)}`), failure(r, 'alloc', `allocation ${id}`)];
    ctx.state.alloc = a;
    const tasks = Object.keys(a.TaskStates || {}).sort();
    const groupTasks = taskNames(a);
    const nsq = q({ namespace: a.Namespace });
    return [
      h('h1', {}, `Allocation ${shortID(a.ID)} `, h('span', { id: 'alloc-status' }, badge(a.ClientStatus))),
      props([
        ['ID', h('span', { class: 'mono' }, a.ID)],
        ['Name', a.Name],
        ['Job', link(`/ui/jobs/${encodeURIComponent(a.JobID)}${nsq}`, a.JobID)],
        ['Namespace', a.Namespace],
        ['Group', a.TaskGroup],
        ['Node', link(`/ui/nodes/${encodeURIComponent(a.NodeID)}`, a.NodeName || shortID(a.NodeID))],
        ['Job version', a.JobVersion],
        ['Desired', [a.DesiredStatus, a.DesiredDescription ? ` (${a.DesiredDescription})` : '']],
        ['Client', [a.ClientStatus, a.ClientDescription ? ` (${a.ClientDescription})` : '']],
        ['Deployment health', deploymentHealth(a)],
        ['Created', ago(a.CreateTime)],
        ['Modified', ago(a.ModifyTime)],
        ['Replaces', a.PreviousAllocation ? link(`/ui/allocations/${a.PreviousAllocation}`, shortID(a.PreviousAllocation), { class: 'mono' }) : null],
        ['Replaced by', a.NextAllocation ? link(`/ui/allocations/${a.NextAllocation}`, shortID(a.NextAllocation), { class: 'mono' }) : null],
      ]),
      section('Logs', logView(ctx, groupTasks.length ? groupTasks : tasks)),
      section('Tasks', tasks.length ? tasks.map((t) => taskView(t, a.TaskStates[t])) : h('p', { class: 'empty' }, 'No task has reported a state yet.')),
      section('Resources', resourcesView(a)),
      section('Checks', checksView(a)),
      section('Service instances', instancesView(a, r)),
      section('Placement', placementView(a)),
    ];
  },
  afterRender(ctx) {
    const a = ctx.state.alloc;
    if (!a) return;
    const log = ctx.state.log || (ctx.state.log = { task: '', type: 'stdout', status: 'idle' });
    const names = taskNames(a);
    if (!log.task && names.length) log.task = names[0];
    if (!log.task) return;
    const ts = (a.TaskStates || {})[log.task];
    const startedAt = ts ? ts.StartedAt : '';
    // (Re)start following: at first, and when the task started again
    // after its output ended (a restart).
    if (log.status === 'idle' || (log.status === 'ended' && ts && ts.State === 'running' && startedAt !== log.startedAt)) {
      followLogs(ctx, startedAt);
    }
  },
  unmount(ctx) {
    if (ctx.state.log && ctx.state.log.ctrl) ctx.state.log.ctrl.abort();
  },
  actions: {
    'log-task': (ctx, el) => {
      ctx.state.log.task = el.value;
      followLogs(ctx, '');
    },
    'log-type': (ctx, el) => {
      ctx.state.log.type = el.value;
      followLogs(ctx, '');
    },
    'log-follow': (ctx) => followLogs(ctx, ''),
  },
};

function taskNames(a) {
  const group = a.Job && (a.Job.TaskGroups || []).find((g) => g.Name === a.TaskGroup);
  return group ? (group.Tasks || []).map((t) => t.Name) : Object.keys(a.TaskStates || {}).sort();
}

function deploymentHealth(a) {
  const s = a.DeploymentStatus;
  if (!s || s.Healthy === null || s.Healthy === undefined) return a.DeploymentID ? 'not yet decided' : null;
  return badge(s.Healthy ? 'healthy' : 'unhealthy');
}

function taskView(name, ts) {
  const events = (ts.Events || []).slice().reverse();
  return h('div', { 'data-key': `task-${name}`, 'data-task': name },
    h('h3', {}, `Task ${name} `, badge(ts.State === 'dead' && ts.Failed ? 'failed' : ts.State, ts.Failed ? `${ts.State}, failed` : ts.State)),
    props([
      ['Restarts', ts.Restarts || 0],
      ['Last restart', when(ts.LastRestart)],
      ['Started', when(ts.StartedAt)],
      ['Finished', when(ts.FinishedAt)],
    ]),
    table(`Events of task ${name}`, [
      ['Time', (e) => when(e.Time)],
      ['Type', (e) => e.Type],
      ['Message', (e) => [e.Message || '', e.ExitCode ? ` (exit code ${e.ExitCode})` : '', e.Signal ? ` (signal ${e.Signal})` : '']],
    ], events, { empty: 'No events.' }));
}

function resourcesView(a) {
  const res = a.AllocatedResources || {};
  const tasks = Object.entries(res.Tasks || {}).sort(([x], [y]) => x.localeCompare(y));
  const ports = (res.Shared && res.Shared.Ports) || [];
  return h('div', { class: 'split' },
    h('div', {}, h('h3', {}, 'Per task'), table('Task resources', [
      ['Task', ([n]) => n],
      ['CPU', ([, t]) => `${(t.Cpu && t.Cpu.CpuShares) || 0} MHz`, { num: true }],
      ['Memory', ([, t]) => `${(t.Memory && t.Memory.MemoryMB) || 0} MiB`, { num: true }],
    ], tasks, { empty: 'No resources granted.' })),
    h('div', {}, h('h3', {}, 'Ports'), table('Ports', [
      ['Label', (p) => p.Label],
      ['Address', (p) => h('span', { class: 'mono' }, `${p.HostIP || a.NodeName}:${p.Value}`)],
      ['To', (p) => p.To || p.Value, { num: true }],
    ], ports, { empty: 'No ports.' })));
}

function checksView(a) {
  const checks = Object.values(a.Checks || {}).sort((x, y) => `${x.Service}/${x.Check}`.localeCompare(`${y.Service}/${y.Check}`));
  return table('Checks', [
    ['Service', (c) => c.Service],
    ['Check', (c) => c.Check],
    ['Status', (c) => badge(c.Status)],
    ['Output', (c) => h('span', { class: 'mono' }, c.Output || '')],
    ['Checked', (c) => ago(c.Timestamp)],
  ], checks, { empty: 'No checks: the group declares no service checks, or none has run yet.' });
}

function instancesView(a, r) {
  const names = groupServices(a);
  if (!names.length) return h('p', { class: 'empty' }, 'The group declares no services.');
  const rows = [];
  const errors = [];
  for (const name of names) {
    const res = r[`svc:${name}`];
    if (res && res.error) errors.push(errorBox(res.error, `service ${name}`));
    for (const inst of (res && res.data) || []) if (inst.AllocID === a.ID) rows.push(inst);
  }
  return [errors, table('Service instances', [
    ['Service', (i) => link(`/ui/services/${encodeURIComponent(i.ServiceName)}${q({ namespace: i.Namespace })}`, i.ServiceName)],
    ['Address', (i) => h('span', { class: 'mono' }, `${i.Address}:${i.Port}`)],
    ['Status', (i) => badge(i.Status)],
    ['Tags', (i) => (i.Tags || []).join(', ')],
    ['VIP', (i) => (i.VIP ? `${i.VIP}:${i.VIPPort}` : '')],
  ], rows, { key: (i) => i.ID, empty: 'No instances of this allocation are registered.' })];
}

function placementView(a) {
  const m = a.Metrics;
  if (!m) return h('p', { class: 'empty' }, 'No placement metrics.');
  const scores = (m.ScoreMetaData || []).slice().sort((x, y) => y.NormScore - x.NormScore);
  return [
    h('ul', {}, explain(m).map((line) => h('li', {}, line))),
    table('Placement scores', [
      ['Node', (s) => link(`/ui/nodes/${encodeURIComponent(s.NodeID)}`, shortID(s.NodeID), { class: 'mono' })],
      ['Score', (s) => s.NormScore.toFixed(3), { num: true }],
      ['Components', (s) => Object.entries(s.Scores || {}).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')],
    ], scores, { key: (s) => s.NodeID, empty: 'No node scores recorded.' }),
  ];
}

// ---- logs --------------------------------------------------------------

function logView(ctx, tasks) {
  const log = ctx.state.log || { task: tasks[0] || '', type: 'stdout', status: 'idle' };
  const status = {
    idle: 'Not following.',
    following: `Following ${log.type} of task ${log.task}.`,
    ended: `The output of task ${log.task} ended: the task is not running.`,
    failed: 'Could not read the logs.',
  }[log.status] || '';
  return [
    h('div', { class: 'logs-bar' },
      h('label', {}, 'Task ', h('select', { 'data-action': 'log-task', value: log.task }, tasks.map((t) => h('option', { value: t }, t)))),
      h('label', {}, 'Stream ', h('select', { 'data-action': 'log-type', value: log.type },
        h('option', { value: 'stdout' }, 'stdout'), h('option', { value: 'stderr' }, 'stderr'))),
      h('span', { role: 'status', 'data-log-status': log.status }, status),
      log.status === 'ended' || log.status === 'failed' ? h('button', { type: 'button', class: 'secondary', 'data-action': 'log-follow' }, 'Follow again') : null),
    log.error ? errorBox(log.error, 'the logs') : null,
    h('pre', { id: 'log', class: 'log', 'data-keep': '', 'data-key': 'log', tabindex: '0', 'aria-label': 'Task output', 'aria-live': 'off' }),
  ];
}

function followLogs(ctx, startedAt) {
  const log = ctx.state.log;
  if (log.ctrl) log.ctrl.abort();
  const ctrl = new AbortController();
  ctx.signal.addEventListener('abort', () => ctrl.abort(), { once: true });
  Object.assign(log, { ctrl, status: 'following', error: null, startedAt });
  const pre = document.getElementById('log');
  if (pre) pre.textContent = '';
  const path = `/v1/client/fs/logs/${encodeURIComponent(ctx.params[0])}${q({
    task: log.task, type: log.type, follow: 'true', origin: 'end', offset: LOG_TAIL_BYTES,
  })}`;
  stream(path, {
    signal: ctrl.signal,
    onChunk(text) {
      const el = document.getElementById('log');
      if (!el) return;
      const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      el.append(document.createTextNode(text));
      if (el.textContent.length > MAX_LOG) el.textContent = el.textContent.slice(-MAX_LOG);
      if (atBottom) el.scrollTop = el.scrollHeight;
    },
  }).then(() => {
    if (log.ctrl !== ctrl) return;
    log.status = 'ended';
    ctx.rerender();
  }, (err) => {
    if (isAbort(err) || log.ctrl !== ctrl) return;
    log.status = 'failed';
    log.error = err;
    ctx.rerender();
  });
  ctx.rerender();
}
