// @ts-check
// Backing devices: the list (size, which mapped devices use each), create, resize, delete,
// export as a download, import an image file.
import { h, rerender, say } from './dom.js';
import { parseSize, formatSize } from './sizes.js';
import { downloadExport } from './download.js';

/** @param {import('./app-context.js').AppContext} app */
export function setupDisks(app) {
  const list = /** @type {HTMLElement} */ (document.getElementById('disks'));
  const createForm = /** @type {HTMLFormElement} */ (document.getElementById('disk-create'));
  const importForm = /** @type {HTMLFormElement} */ (document.getElementById('disk-import'));
  const listMsg = h('output.msg', { 'aria-live': 'polite' });

  createForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = createForm.elements;
    const name = /** @type {HTMLInputElement} */ (f.namedItem('name')).value.trim();
    const out = /** @type {HTMLElement} */ (f.namedItem('msg'));
    app.act(createForm.querySelector('button'), out, async () => {
      const bytes = parseSize(/** @type {HTMLInputElement} */ (f.namedItem('size')).value);
      await app.client.call('createDisk', { name, bytes });
      createForm.reset();
      return `created ${name} (${formatSize(bytes)})`;
    });
  });

  importForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = importForm.elements;
    const input = /** @type {HTMLInputElement} */ (f.namedItem('file'));
    const file = input.files?.[0];
    const out = /** @type {HTMLElement} */ (f.namedItem('msg'));
    const nameInput = /** @type {HTMLInputElement} */ (f.namedItem('name'));
    app.act(importForm.querySelector('button'), out, async () => {
      if (!file) throw new Error('pick an image file first');
      const name = nameInput.value.trim() || file.name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]/g, '-');
      await app.client.call('importDisk', { name, file });
      importForm.reset();
      return `imported ${file.name} as ${name} (${formatSize(file.size)})`;
    });
  });

  const resize = (disk, button) => {
    const text = prompt(`New size of ${disk.name} (now ${formatSize(disk.bytes)}):`, `${disk.bytes / 1024 / 1024}M`);
    if (text === null) return;
    app.act(button, listMsg, async () => {
      const bytes = parseSize(text);
      await app.client.call('resizeDisk', { name: disk.name, bytes });
      return `${disk.name} is now ${formatSize(bytes)}`;
    });
  };

  const render = () => {
    const disks = app.state.disks;
    rerender(list,
      disks.length === 0 ? h('p.hint', null, 'No backing devices yet: create one below (a sparse file in OPFS, all zeroes).') :
        h('table.list', null,
          h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Size'), h('th.optional', null, 'Used by'), h('th', null, 'Actions'))),
          h('tbody', null, disks.map((d) => h('tr', { dataset: { disk: d.name } },
            h('td.mono', null, d.name),
            h('td', null, formatSize(d.bytes), h('br'), h('span.hint', null, `${d.bytes / 512} sectors`)),
            h('td.optional', null, d.usedBy.join(', ') || '—'),
            h('td.actions', null,
              h('button', { type: 'button', dataset: { key: `resize-${d.name}` }, 'aria-label': `Resize ${d.name}`, on: { click: (e) => resize(d, e.currentTarget) } }, 'Resize'),
              h('button', { type: 'button', dataset: { key: `export-${d.name}` }, 'aria-label': `Export ${d.name}`,
                on: { click: (e) => app.act(/** @type {HTMLElement} */ (e.currentTarget), listMsg, async () => {
                  const r = await app.client.call('exportDisk', { name: d.name });
                  await downloadExport(r.file);
                  return `exported ${d.name} as ${r.file} (${formatSize(r.bytes)})`;
                }) } }, 'Export'),
              h('button', { type: 'button', dataset: { key: `delete-${d.name}` }, 'aria-label': `Delete ${d.name}`,
                on: { click: (e) => {
                  if (!confirm(`Delete backing device ${d.name} and its data?`)) return;
                  app.act(/** @type {HTMLElement} */ (e.currentTarget), listMsg, async () => { await app.client.call('removeDisk', { name: d.name }); return `deleted ${d.name}`; });
                } } }, 'Delete')))))),
      listMsg);
  };
  app.onChange(render);
  say(listMsg, '', 'ok');
}
