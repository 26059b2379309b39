// @ts-check
// Mapped devices: the list with dmsetup's verbs on each, and the table editor, which checks the
// table as it is typed by loading it into a scratch copy of the core (its messages, verbatim).
import { h, rerender, say } from './dom.js';
import { formatSize } from './sizes.js';
import { drawTableBar } from './table-bar.js';

/** @param {import('./app-context.js').AppContext} app */
export function setupDevices(app) {
  const list = /** @type {HTMLElement} */ (document.getElementById('devices'));
  const form = /** @type {HTMLFormElement} */ (document.getElementById('table-form'));
  const nameInput = /** @type {HTMLInputElement} */ (form.elements.namedItem('name'));
  const tableInput = /** @type {HTMLTextAreaElement} */ (form.elements.namedItem('table'));
  const check = /** @type {HTMLElement} */ (document.getElementById('table-check'));
  const preview = /** @type {HTMLElement} */ (document.getElementById('table-preview'));
  const out = /** @type {HTMLElement} */ (form.elements.namedItem('msg'));
  const reloadButton = /** @type {HTMLButtonElement} */ (form.elements.namedItem('reload'));
  const createButton = /** @type {HTMLButtonElement} */ (form.elements.namedItem('create'));
  const listMsg = h('output.msg', { 'aria-live': 'polite' });

  // ---- live validation
  let timer = 0, generation = 0;
  const validate = () => {
    clearTimeout(timer);
    timer = window.setTimeout(async () => {
      const gen = ++generation;
      const name = nameInput.value.trim();
      const table = tableInput.value;
      if (table.trim() === '') { say(check, ''); preview.replaceChildren(); return; }
      const mode = app.device(name) ? 'reload' : 'create';
      try {
        const r = await app.client.call('validate', { name: name || 'new-device', table, mode });
        if (gen !== generation) return;
        say(check, r.ok ? `✓ ${r.message}: ${r.sectors} sectors (${formatSize(r.sectors * 512)})` : r.message, r.ok ? 'ok' : 'error');
        tableInput.setAttribute('aria-invalid', r.ok ? 'false' : 'true');
        preview.replaceChildren(r.ok ? drawTableBar(name || 'new-device', table, app.sizeOf, preview.clientWidth || 600) : '');
      } catch (e) {
        if (gen === generation) say(check, e instanceof Error ? e.message : String(e), 'error');
      }
    }, 150);
  };
  tableInput.addEventListener('input', validate);
  nameInput.addEventListener('input', validate);

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    app.act(createButton, out, async () => {
      await app.client.call('create', { name, table: tableInput.value });
      app.select(name);
      return `created ${name}`;
    });
  });
  reloadButton.addEventListener('click', () => {
    const name = nameInput.value.trim();
    app.act(reloadButton, out, async () => {
      await app.client.call('reload', { name, table: tableInput.value });
      return `loaded the inactive table of ${name}: resume ${name} to switch to it`;
    });
  });

  /** Puts a table into the editor (from an example or a device's current table). */
  app.editTable = (name, table) => {
    nameInput.value = name;
    tableInput.value = table;
    validate();
    tableInput.focus();
  };

  // ---- examples, built from the backing devices there are
  const examples = /** @type {HTMLElement} */ (document.getElementById('examples'));
  const renderExamples = () => {
    const d = app.state.disks;
    const sec = (i) => (d[i] ? d[i].bytes / 512 : 0);
    const items = [];
    if (d[0]) items.push(['linear', 'lin', `0 ${sec(0)} linear ${d[0].name} 0`]);
    if (d[0]) items.push(['zero then error', 'holes', `0 2048 zero\n2048 2048 error`]);
    if (d[1]) {
      const per = Math.min(sec(0), sec(1)) - (Math.min(sec(0), sec(1)) % 128);
      items.push(['striped over two', 'stripes', `0 ${per * 2} striped 2 128 ${d[0].name} 0 ${d[1].name} 0`]);
      items.push(['snapshot origin', 'origin', `0 ${sec(0)} snapshot-origin ${d[0].name}`]);
      items.push(['persistent snapshot', 'snap', `0 ${sec(0)} snapshot ${d[0].name} ${d[1].name} P 8`]);
    }
    rerender(examples, items.length === 0 ? h('p.hint', null, 'Create a backing device or two first.') :
      h('div.row', null, items.map(([label, name, table]) => h('button', {
        type: 'button', dataset: { key: `example-${label}` }, title: table.replace('\n', ' / '),
        on: { click: () => app.editTable(name, table) },
      }, label))));
  };

  // ---- the list
  const render = () => {
    const devs = app.state.devices;
    rerender(list,
      devs.length === 0 ? h('p.hint', null, 'No mapped devices yet: write a table below.') :
        h('table.list', null,
          h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'State'), h('th.optional', null, 'Size'), h('th', null, 'Actions'))),
          h('tbody', null, devs.map((d) => h('tr', { class: d.name === app.selected ? 'selected' : null, dataset: { device: d.name } },
            h('td.mono', null, d.name),
            h('td', null, d.state.toLowerCase(), d.hasInactive ? h('span.hint', null, ' (inactive table waiting)') : null),
            h('td.optional', null, `${formatSize(d.sectors * 512)}`),
            h('td.actions', null,
              h('button', { type: 'button', dataset: { key: `select-${d.name}` }, 'aria-pressed': String(d.name === app.selected),
                'aria-label': `Select ${d.name}`, on: { click: () => app.select(d.name, true) } }, 'Select'),
              d.state === 'SUSPENDED' || d.hasInactive
                ? h('button', { type: 'button', dataset: { key: `resume-${d.name}` }, 'aria-label': `Resume ${d.name}`,
                  on: { click: (e) => app.act(e.currentTarget, listMsg, async () => { await app.client.call('resume', { name: d.name }); return `resumed ${d.name}`; }) } }, 'Resume')
                : h('button', { type: 'button', dataset: { key: `suspend-${d.name}` }, 'aria-label': `Suspend ${d.name}`,
                  on: { click: (e) => app.act(e.currentTarget, listMsg, async () => { await app.client.call('suspend', { name: d.name }); return `suspended ${d.name}`; }) } }, 'Suspend'),
              h('button', { type: 'button', dataset: { key: `remove-${d.name}` }, 'aria-label': `Remove ${d.name}`,
                on: { click: (e) => app.act(e.currentTarget, listMsg, async () => {
                  await app.client.call('remove', { name: d.name });
                  if (app.selected === d.name) app.select(null);
                  return `removed ${d.name}`;
                }) } }, 'Remove')))))),
      listMsg);
    renderExamples();
  };
  app.onChange(render);
}
