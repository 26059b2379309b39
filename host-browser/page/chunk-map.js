// @ts-check
// A snapshot's chunk map: one cell per origin chunk (untouched, being copied, copied), drawn on
// a canvas, with the counts and the COW usage from the status line spelled out for everyone.
import { h } from './dom.js';

const STATE_COLORS = ['#d8dee4', '#e8a200', '#1a7f37'];

/** "allocated/total metadata" from a snapshot status line, or null. */
export function cowUsage(status) {
  const m = /^\S+ \S+ snapshot(?:-merge)? (\d+)\/(\d+) (\d+)/.exec(status.split('\n')[0] ?? '');
  return m ? { allocated: Number(m[1]), total: Number(m[2]), metadata: Number(m[3]) } : null;
}

/**
 * @param {{dev: string, chunkSize: number, copied: number, copying: number, state: Uint8Array,
 *   persistent: boolean, invalid: boolean, origin: string, cow: string}} map
 * @param {string} status the device's status text
 * @param {number} width CSS pixels available
 */
export function drawChunkMap(map, status, width) {
  width = Math.max(160, width);
  const n = map.state.length;
  const cell = Math.max(3, Math.min(16, Math.floor(Math.sqrt((width * 260) / Math.max(n, 1)))));
  const cols = Math.max(1, Math.floor(width / cell));
  const rows = Math.ceil(n / cols);
  const canvas = /** @type {HTMLCanvasElement} */ (h('canvas.chunks', {
    width: cols * cell, height: Math.max(rows * cell, cell), role: 'img',
    'aria-label': `chunk map of ${map.dev}: ${map.copied} of ${n} chunks copied, ${map.copying} being copied`,
    dataset: { copied: String(map.copied), copying: String(map.copying), chunks: String(n) },
  }));
  canvas.style.width = `${cols * cell}px`;
  const ctx = canvas.getContext('2d');
  if (ctx) {
    for (let i = 0; i < n; i++) {
      ctx.fillStyle = STATE_COLORS[map.state[i]] ?? '#000';
      ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - (cell > 4 ? 1 : 0), cell - (cell > 4 ? 1 : 0));
    }
  }
  const usage = cowUsage(status);
  const pct = usage ? (100 * usage.allocated) / usage.total : 0;
  return h('div.chunkmap', null,
    h('p.hint', null, `${map.persistent ? 'Persistent' : 'Transient'} snapshot of ${map.origin}, COW device ${map.cow}, `
      + `chunk ${map.chunkSize} sectors (${map.chunkSize / 2} KiB); one cell per origin chunk.`),
    map.invalid ? h('p.bad', null, 'The snapshot is invalid (its COW device filled up or failed).') : null,
    h('div.legend', null,
      h('span', { style: `--c:${STATE_COLORS[0]}` }, `untouched ${n - map.copied - map.copying}`),
      h('span', { style: `--c:${STATE_COLORS[1]}` }, `being copied ${map.copying}`),
      h('span', { style: `--c:${STATE_COLORS[2]}`, class: 'copied-count' }, `copied ${map.copied}`)),
    canvas,
    usage ? h('div', null,
      h('p.hint', null, `COW usage: ${usage.allocated} of ${usage.total} sectors allocated (${pct.toFixed(1)}%), ${usage.metadata} of them metadata`),
      h('div.usage', { role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': usage.total, 'aria-valuenow': usage.allocated, 'aria-label': 'COW usage' },
        h('div', { style: `width:${Math.min(100, pct)}%` }))) : null);
}
