// @ts-check
// Reading and writing sectors of one device: a hex + ASCII view, writes with a fill (the golden
// PRNG pattern, a byte, repeated text, zeroes, discard), a file uploaded into a range, flush.
import { h, say } from './dom.js';
import { hexDump, collapseRepeats } from './hex-view.js';

/** @param {import('./app-context.js').AppContext} app @param {string} name */
export function setupSectors(app, name) {
  const out = h('output.msg', { 'aria-live': 'polite' });
  const view = h('pre.hex', { hidden: true, tabindex: '0', 'aria-label': `sectors of ${name}`, dataset: { what: 'hex' } });
  let shown = null;

  const num = (form, field) => {
    const v = /** @type {HTMLInputElement} */ (form.elements.namedItem(field)).value.trim();
    if (!/^\d+$/.test(v)) throw new Error(`${field} must be a whole number, not '${v}'`);
    return Number(v);
  };

  const show = async (sector, count) => {
    const bytes = await app.client.call('read', { name, sector, count });
    view.hidden = false;
    const perRow = view.clientWidth >= 640 ? 16 : 8;
    view.dataset.perRow = String(perRow);
    view.textContent = collapseRepeats(hexDump(bytes, sector, perRow));
    shown = { sector, count };
  };

  const readForm = h('form.row', { on: { submit: (ev) => {
    ev.preventDefault();
    const f = /** @type {HTMLFormElement} */ (ev.currentTarget);
    app.act(f.querySelector('button'), out, async () => {
      const sector = num(f, 'sector'), count = num(f, 'count');
      await show(sector, count);
      return `read sectors ${sector}+${count}`;
    });
  } } },
  h('label', null, 'Sector', h('input', { name: 'sector', value: '0', inputmode: 'numeric', size: 8, autocomplete: 'off' })),
  h('label', null, 'count', h('input', { name: 'count', value: '1', inputmode: 'numeric', size: 4, autocomplete: 'off' })),
  h('button', { type: 'submit' }, 'Read'));

  const fillSelect = h('select', { name: 'fill', 'aria-label': 'fill with' },
    h('option', { value: 'seed' }, 'pattern (seed)'), h('option', { value: 'byte' }, 'byte (hex)'),
    h('option', { value: 'text' }, 'text, repeated'), h('option', { value: 'zeroes' }, 'zeroes (WRITE_ZEROES)'),
    h('option', { value: 'discard' }, 'discard'));
  const writeForm = h('form.row', { on: { submit: (ev) => {
    ev.preventDefault();
    const f = /** @type {HTMLFormElement} */ (ev.currentTarget);
    app.act(f.querySelector('button'), out, async () => {
      const sector = num(f, 'sector'), count = num(f, 'count');
      const kind = /** @type {HTMLSelectElement} */ (fillSelect).value;
      const value = /** @type {HTMLInputElement} */ (f.elements.namedItem('value')).value;
      let fill;
      if (kind === 'seed') {
        if (!/^\d+$/.test(value.trim()) || Number(value) > 0xffffffff) throw new Error(`the seed must be a number from 0 to 4294967295, not '${value}'`);
        fill = { kind, seed: Number(value) };
      } else if (kind === 'byte') {
        if (!/^(0x)?[0-9a-f]{1,2}$/i.test(value.trim())) throw new Error(`the byte must be hex, 00 to ff, not '${value}'`);
        fill = { kind, value: parseInt(value.trim().replace(/^0x/i, ''), 16) };
      } else if (kind === 'text') fill = { kind, text: value };
      else fill = { kind };
      const fua = /** @type {HTMLInputElement} */ (f.elements.namedItem('fua')).checked;
      await app.client.call('write', { name, sector, count, fill, fua });
      if (shown) await show(shown.sector, shown.count);
      return `${kind === 'discard' ? 'discarded' : 'wrote'} sectors ${sector}+${count}`;
    });
  } } },
  h('label', null, 'Sector', h('input', { name: 'sector', value: '0', inputmode: 'numeric', size: 8, autocomplete: 'off' })),
  h('label', null, 'count', h('input', { name: 'count', value: '8', inputmode: 'numeric', size: 5, autocomplete: 'off' })),
  h('label', null, 'fill', fillSelect),
  h('label', null, 'value', h('input', { name: 'value', value: '1', size: 10, autocomplete: 'off' })),
  h('label', null, h('input', { name: 'fua', type: 'checkbox' }), 'FUA'),
  h('button', { type: 'submit' }, 'Write'));

  const uploadForm = h('form.row', { on: { submit: (ev) => {
    ev.preventDefault();
    const f = /** @type {HTMLFormElement} */ (ev.currentTarget);
    app.act(f.querySelector('button'), out, async () => {
      const file = /** @type {HTMLInputElement} */ (f.elements.namedItem('file')).files?.[0];
      if (!file) throw new Error('pick a file first');
      const sector = num(f, 'sector');
      const sectors = await app.client.call('upload', { name, sector, file });
      if (shown) await show(shown.sector, shown.count);
      return `uploaded ${file.name} (${file.size} bytes) into sectors ${sector}+${sectors}`;
    });
  } } },
  h('label', null, 'Upload file', h('input', { name: 'file', type: 'file', required: true })),
  h('label', null, 'at sector', h('input', { name: 'sector', value: '0', inputmode: 'numeric', size: 8, autocomplete: 'off' })),
  h('button', { type: 'submit' }, 'Upload'));

  const flush = h('button', { type: 'button', on: { click: (e) => app.act(e.currentTarget, out, async () => {
    await app.client.call('flush', { name });
    return `flushed ${name}`;
  }) } }, 'Flush');

  say(out, '');
  return h('div.sectors', { dataset: { device: name } }, readForm, writeForm, uploadForm, h('div.row', null, flush), out, view);
}
