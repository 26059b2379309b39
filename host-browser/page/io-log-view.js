// @ts-check
// The I/O log, newest first: each request (or table load) with the commands the core split it
// into, their role (request data, snapshot copy, metadata, read-modify-write) and outcome.
import { h } from './dom.js';

const KEEP = 150;

/** @param {import('./app-context.js').AppContext} app */
export function setupIoLog(app) {
  const list = /** @type {HTMLElement} */ (document.getElementById('log'));
  const empty = h('p.hint', null, 'No I/O yet.');
  list.append(empty);

  /** Linux's words for what a target did (its kernel log), under the entry it happened in. */
  const kernelNodes = (e) => (e.kernel ?? []).map((line) => h('p.bad.mono', { dataset: { what: 'kernel-log' } }, `kernel log: ${line}`));

  const entryNode = (e) => {
    if (e.op === 'LOG') {
      return h('details', { open: true, dataset: { entry: String(e.id), op: e.op, dev: e.dev } },
        h('summary', null, h('span.mono', null, `#${e.id} kernel log ${e.dev}`)), ...kernelNodes(e));
    }
    const range = e.op === 'LOAD' ? '' : ` ${e.sector}+${e.count}`;
    const copies = e.commands.filter((c) => c.role.includes('copy')).length;
    const rmw = e.commands.filter((c) => c.role.startsWith('read-modify-write')).length;
    const notes = [copies ? `${copies} copy step(s)` : '', rmw ? `${rmw} read-modify-write step(s)` : ''].filter(Boolean).join(', ');
    // Open where the kernel logged something: the reason is seen without a click.
    return h('details', { open: (e.kernel ?? []).length > 0, dataset: { entry: String(e.id), op: e.op, dev: e.dev } },
      h('summary', null,
        h('span.mono', null, `#${e.id} ${e.what === 'load table' ? 'load table' : e.op} ${e.dev}${range}`), ' → ',
        h(e.status === 'OK' ? 'span.good' : 'span.bad', null, e.status), ` · ${e.commands.length + e.more} command(s)`,
        notes ? ` · ${notes}` : '', ` · ${e.ms} ms`),
      ...kernelNodes(e),
      e.commands.length === 0 ? h('p.hint', null, 'No command reached a backing device.') :
        h('table.list', null,
          h('thead', null, h('tr', null, h('th', null, 'op'), h('th', null, 'device'), h('th', null, 'sectors'), h('th', null, 'role'), h('th', null, 'result'))),
          h('tbody', null, e.commands.map((c) => h('tr', null,
            h('td.mono', null, c.op + (c.fua ? '+FUA' : '')), h('td.mono', null, c.disk),
            h('td.mono', null, c.op === 'FLUSH' ? '' : `${c.sector}+${c.count}`), h('td', null, c.role),
            h('td', null, c.status))))),
      e.more ? h('p.hint', null, `… and ${e.more} more`) : null);
  };

  /** @param {any[]} entries oldest first */
  let newest = 0; // entries may arrive both as progress and in the first state: show each once
  app.addLogEntries = (entries) => {
    const fresh = entries.filter((e) => e.id > newest);
    if (!fresh.length) return;
    empty.remove();
    for (const e of fresh) list.prepend(entryNode(e));
    newest = fresh[fresh.length - 1].id;
    while (list.children.length > KEEP) list.lastElementChild?.remove();
  };
}
