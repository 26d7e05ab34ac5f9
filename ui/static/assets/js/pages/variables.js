// Variables: their paths (names) for any token that may list them;
// the items only when the token may read that variable. Followed with
// blocking queries (variables have no event topic).

import { h, badge, link, table, props, ago, errorBox } from '../dom.js';
import { q, encPath } from '../api.js';
import { loading, ready, data, failure, namespace } from './common.js';

export const variablesPage = {
  nav: 'variables',
  title: () => 'Variables',
  sources: () => ({ vars: { path: '/v1/vars?namespace=*' } }),
  stream: () => null,
  view(ctx, r) {
    if (!ready(r, 'vars')) return loading('Variables');
    const vars = (data(r, 'vars', []) || []).slice().sort((a, b) => a.Path.localeCompare(b.Path) || a.Namespace.localeCompare(b.Namespace));
    return [
      h('h1', {}, 'Variables'),
      h('p', { class: 'sub' }, 'Paths only; open one to see its items if your token may read it.'),
      failure(r, 'vars', 'the variables'),
      r.vars.next ? h('p', { class: 'msg note' }, `Only the first ${vars.length} variables are listed; use drover var list -prefix to see the rest.`) : null,
      table('Variables', [
        ['Path', (v) => link(`/ui/variables/${encPath(v.Path)}${q({ namespace: v.Namespace })}`, v.Path, { class: 'mono' })],
        ['Namespace', (v) => v.Namespace],
        ['Modified', (v) => ago(v.ModifyTime)],
        ['Modify index', (v) => v.ModifyIndex, { num: true }],
      ], vars, { key: (v) => `${v.Namespace}/${v.Path}`, rowAttrs: (v) => ({ 'data-var': v.Path }), empty: 'No variables (or none your token may list).' }),
    ];
  },
};

export const variablePage = {
  nav: 'variables',
  title: (ctx) => `Variable ${ctx.params[0]}`,
  sources: (ctx) => ({ v: { path: `/v1/var/${encPath(ctx.params[0])}${q({ namespace: namespace(ctx) })}` } }),
  stream: () => null,
  view(ctx, r) {
    const path = ctx.params[0];
    if (!ready(r, 'v')) return loading(path);
    const res = r.v;
    if (res.error) {
      return [
        h('h1', { class: 'mono' }, path),
        h('p', { class: 'sub' }, `Namespace ${namespace(ctx)}`),
        res.error.status === 403
          ? [h('p', {}, 'Only the name of this variable is shown: your token may not read its items.'), errorBox(res.error, `variable ${path}`)]
          : failure(r, 'v', `variable ${path}`),
      ];
    }
    const v = res.data;
    const items = Object.entries(v.Items || {}).sort(([a], [b]) => a.localeCompare(b));
    const reveal = !!ctx.state.reveal;
    return [
      h('h1', { class: 'mono' }, v.Path),
      props([
        ['Namespace', v.Namespace],
        ['Modified', ago(v.ModifyTime)],
        ['Modify index', v.ModifyIndex],
      ]),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary', 'data-action': 'reveal', 'aria-pressed': reveal ? 'true' : 'false' }, reveal ? 'Hide values' : 'Show values')),
      table('Items', [
        ['Key', ([k]) => h('span', { class: 'mono' }, k)],
        ['Value', ([, val]) => (reveal ? h('span', { class: 'mono' }, val) : badge('hidden', '••••••'))],
      ], items, { key: ([k]) => k, empty: 'No items.' }),
    ];
  },
  actions: {
    reveal: (ctx) => {
      ctx.state.reveal = !ctx.state.reveal;
      ctx.rerender();
    },
  },
};
