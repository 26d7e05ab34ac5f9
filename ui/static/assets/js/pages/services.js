// Services and routes, and one service's instances. Services have no
// event topic: these pages follow them with blocking queries.

import { h, badge, link, table, shortID } from '../dom.js';
import { q } from '../api.js';
import { loading, ready, data, failure, section, namespace } from './common.js';

export const servicesPage = {
  nav: 'services',
  title: () => 'Services',
  sources: () => ({
    services: { path: '/v1/services?namespace=*' },
    routes: { path: '/v1/routes?namespace=*' },
  }),
  stream: () => null,
  view(ctx, r) {
    if (!ready(r, 'services', 'routes')) return loading('Services');
    const services = (data(r, 'services', []) || []).slice().sort((a, b) => a.Name.localeCompare(b.Name) || a.Namespace.localeCompare(b.Namespace));
    const routes = (data(r, 'routes', []) || []).slice().sort((a, b) => `${a.Route.Host}${a.Route.Path}`.localeCompare(`${b.Route.Host}${b.Route.Path}`));
    return [
      h('h1', {}, 'Services'),
      failure(r, 'services', 'the services'),
      table('Services', [
        ['Name', (s) => link(`/ui/services/${encodeURIComponent(s.Name)}${q({ namespace: s.Namespace })}`, s.Name)],
        ['Namespace', (s) => s.Namespace],
        ['Instances', (s) => s.Instances, { num: true }],
        ['Passing', (s) => h('span', {}, badge(s.Passing === s.Instances && s.Instances > 0 ? 'passing' : s.Passing ? 'warning' : 'critical', `${s.Passing} / ${s.Instances}`)), { num: true }],
        ['VIP', (s) => (s.VIP ? h('span', { class: 'mono' }, s.VIP) : '')],
        ['Tags', (s) => (s.Tags || []).join(', ')],
      ], services, { key: (s) => `${s.Namespace}/${s.Name}`, rowAttrs: (s) => ({ 'data-service': s.Name }), empty: 'No services are registered.' }),
      section('Routes',
        failure(r, 'routes', 'the routes'),
        table('Routes', [
          ['Host', (x) => x.Route.Host || h('span', { class: 'empty' }, 'any')],
          ['Path', (x) => h('span', { class: 'mono' }, x.Route.Path)],
          ['Service', (x) => link(`/ui/services/${encodeURIComponent(x.ServiceName)}${q({ namespace: x.Namespace })}`, x.ServiceName)],
          ['Job', (x) => link(`/ui/jobs/${encodeURIComponent(x.JobID)}${q({ namespace: x.Namespace })}`, x.JobID)],
          ['Passing', (x) => x.Passing, { num: true }],
          ['Canary', (x) => (x.Route.CanaryWeight ? `${x.Canary} (${x.Route.CanaryWeight}%)` : x.Canary || ''), { num: true }],
          ['Backends', (x) => h('span', { class: 'mono' }, (x.Backends || []).join(' '))],
        ], routes, { empty: 'No routes: no service declares a route block.' })),
    ];
  },
};

export const servicePage = {
  nav: 'services',
  title: (ctx) => `Service ${ctx.params[0]}`,
  sources: (ctx) => ({
    instances: { path: `/v1/service/${encodeURIComponent(ctx.params[0])}${q({ namespace: namespace(ctx) })}` },
  }),
  stream: () => null,
  view(ctx, r) {
    const name = ctx.params[0];
    if (!ready(r, 'instances')) return loading(`Service ${name}`);
    const instances = (data(r, 'instances', []) || []).slice().sort((a, b) => a.AllocID.localeCompare(b.AllocID));
    return [
      h('h1', {}, `Service ${name}`),
      h('p', { class: 'sub' }, `Namespace ${namespace(ctx)}`),
      failure(r, 'instances', `service ${name}`),
      table('Instances', [
        ['Allocation', (i) => link(`/ui/allocations/${encodeURIComponent(i.AllocID)}`, shortID(i.AllocID), { class: 'mono' })],
        ['Job', (i) => link(`/ui/jobs/${encodeURIComponent(i.JobID)}${q({ namespace: i.Namespace })}`, i.JobID)],
        ['Node', (i) => link(`/ui/nodes/${encodeURIComponent(i.NodeID)}`, shortID(i.NodeID), { class: 'mono' })],
        ['Address', (i) => h('span', { class: 'mono' }, `${i.Address}:${i.Port}`)],
        ['Status', (i) => badge(i.Status)],
        ['Checks', (i) => (i.Checks || []).map((c, k) => [k ? ' ' : '', badge(c.Status, `${c.Check}: ${c.Status}`)])],
        ['Tags', (i) => [(i.Tags || []).join(', '), i.Canary ? ' (canary)' : '']],
      ], instances, { key: (i) => i.ID, empty: 'No instances.' }),
    ];
  },
};
