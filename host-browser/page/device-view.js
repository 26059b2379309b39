// @ts-check
// The selected mapped device: its table drawn and printed as `dmsetup table` / `dmsetup status`
// print them, a message box, sector reading and writing, export, and the chunk map of a snapshot.
// The forms are built once per selection (typing is never interrupted); the rest follows state.
import { h, rerender, say } from './dom.js';
import { formatSize } from './sizes.js';
import { drawTableBar } from './table-bar.js';
import { drawChunkMap } from './chunk-map.js';
import { setupSectors } from './sector-panel.js';
import { downloadExport } from './download.js';

/** @param {import('./app-context.js').AppContext} app */
export function setupDeviceView(app) {
  const section = /** @type {HTMLElement} */ (document.getElementById('device'));
  const heading = /** @type {HTMLElement} */ (document.getElementById('device-h'));
  const body = /** @type {HTMLElement} */ (document.getElementById('device-body'));
  /** @type {null | {name: string, bar: HTMLElement, tables: HTMLElement, map: HTMLElement, summary: HTMLElement}} */
  let view = null;

  const build = (name) => {
    const out = h('output.msg', { 'aria-live': 'polite' });
    const bar = h('div.bar-picture');
    const tables = h('div.cols');
    const map = h('div.map');
    const summary = h('p.hint');
    const msgForm = h('form.row', { on: { submit: (ev) => {
      ev.preventDefault();
      const f = /** @type {HTMLFormElement} */ (ev.currentTarget).elements;
      const sector = Number(/** @type {HTMLInputElement} */ (f.namedItem('sector')).value);
      const text = /** @type {HTMLInputElement} */ (f.namedItem('text')).value;
      app.act(/** @type {HTMLFormElement} */ (ev.currentTarget).querySelector('button'), out, async () => {
        const reply = await app.client.call('message', { name, sector, text });
        return `message sent${reply ? `: ${reply}` : ''}`;
      });
    } } },
    h('label', null, 'Message to sector', h('input', { name: 'sector', type: 'number', min: 0, value: '0', size: 6, style: 'width:6em' })),
    h('label', null, 'text', h('input', { name: 'text', autocomplete: 'off', required: true, size: 16 })),
    h('button', { type: 'submit' }, 'Send'));
    const actions = h('div.row', null,
      h('button', { type: 'button', on: { click: () => { const d = app.device(name); if (d) app.editTable(name, d.table); } } }, 'Edit table'),
      h('button', { type: 'button', on: { click: (e) => app.act(e.currentTarget, out, async () => {
        const r = await app.client.call('exportDevice', { name });
        await downloadExport(r.file);
        return `exported ${name} as ${r.file} (${formatSize(r.bytes)}, read through the device)`;
      }) } }, 'Export device'));
    rerender(body, summary, actions, out,
      h('h3', null, 'Table'), bar, tables,
      h('div.map-wrap', null, map),
      h('h3', null, 'Sectors'), setupSectors(app, name),
      h('h3', null, 'Message'), msgForm);
    view = { name, bar, tables, map, summary };
  };

  const render = () => {
    const name = app.selected;
    const dev = name ? app.device(name) : null;
    if (!dev) {
      view = null;
      heading.textContent = 'No device selected';
      rerender(body, h('p.hint', null, 'Create a mapped device, then select it to see its table, status, sectors and pictures.'));
      return;
    }
    if (!view || view.name !== name) build(name);
    const v = /** @type {NonNullable<typeof view>} */ (view);
    heading.textContent = `Device ${name}`;
    v.summary.textContent = `${dev.state.toLowerCase()}, ${dev.sectors} sectors (${formatSize(dev.sectors * 512)}), open count ${dev.openCount}`
      + (dev.hasInactive ? '; an inactive table is loaded: resume to switch to it' : '');
    const width = v.bar.clientWidth || section.clientWidth - 24 || 600;
    rerender(v.bar, dev.table ? drawTableBar(name, dev.table, app.sizeOf, width) : h('p.hint', null, 'No live table.'));
    rerender(v.tables,
      h('div', null, h('h4', null, 'dmsetup table'), h('pre', { dataset: { what: 'table' } }, dev.table || '(none)')),
      h('div', null, h('h4', null, 'dmsetup status'), h('pre', { dataset: { what: 'status' } }, dev.status || '(none)')),
      dev.hasInactive ? h('div', null, h('h4', null, 'inactive table'), h('pre', { dataset: { what: 'inactive' } }, dev.inactiveTable)) : null);
    renderMap();
  };

  const renderMap = () => {
    if (!view) return;
    const map = app.maps.get(view.name);
    const dev = app.device(view.name);
    if (!map || !dev) { rerender(view.map); return; }
    rerender(view.map, h('h3', null, 'Chunk map'), drawChunkMap(map, dev.status, view.map.clientWidth || section.clientWidth - 24 || 600));
  };

  app.onChange(render);
  app.renderMap = renderMap;
  window.addEventListener('resize', () => render());
}
